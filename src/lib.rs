//! gathm: discover tools described by `tool.yaml` manifests and run them
//! behind a persisted circuit breaker, fallback chains, a result cache, role
//! policies and rate limits, with audit logs. See ARCHITECTURE.md for the map.

#![recursion_limit = "256"]
#![forbid(unsafe_code)]

pub mod api;
pub mod app;
pub mod auth;
pub mod breaker;
pub mod cache;
pub mod chain;
pub mod cli;
pub mod client;
pub mod clock;
pub mod config;
pub mod error;
pub mod fallback;
pub mod health;
pub mod home;
pub mod http;
pub mod jobs;
pub mod logs;
pub mod manifest;
pub mod mcp;
pub mod metrics;
pub mod openapi;
pub mod ops;
pub mod output;
pub mod parallel;
pub mod parsed;
pub mod pipeline;
pub mod policy;
pub mod ratelimit;
pub mod registry;
pub mod retry;
pub mod run;
pub mod runner;
pub mod schedule;
pub mod schema;
pub mod server;
pub mod slots;
pub mod sse;
pub mod state;
pub mod words;

pub use app::{entry, main};
