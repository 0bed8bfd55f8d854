//! The integration-test binary: one module per feature; every test runs the
//! real `gathm` binary against a temporary `GATHM_HOME` and fixture tools.

mod harness;

mod chain;
mod cli;
mod mcp;
mod parallel;
mod pipeline;
mod policy;
mod resilience;
mod run;
mod schedule;
mod serve;
mod validate;
