//! The integration-test binary: one module per feature; every test runs the
//! real `gathm` binary against a temporary `GATHM_HOME` and fixture tools.

mod harness;

mod chain;
mod cli;
mod degraded;
mod first_hour;
mod fleet;
mod fleet_jobs;
mod jobs;
mod mcp;
mod mcp_http;
mod openai;
mod parallel;
mod pipeline;
mod policy;
mod readme;
mod redis;
mod resilience;
mod run;
mod safe;
mod schedule;
mod serve;
mod serve_limits;
mod serve_openapi;
mod serve_streams;
mod validate;
mod workspace;
