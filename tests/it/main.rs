//! The integration-test binary: one module per feature; every test runs the
//! real `gathm` binary against a temporary `GATHM_HOME` and fixture tools.

mod harness;

mod cli;
mod run;
mod serve;
