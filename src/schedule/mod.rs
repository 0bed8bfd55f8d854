//! Schedules and concurrency groups (STYLE.md §7: `schedule/`): the
//! `gathm.yaml` configuration file, cron expressions in a time zone, running
//! due slots without a server (`gathm schedule tick`) and inside `gathm
//! serve` (as jobs). The group slots themselves are in `state/groups.rs`.

pub mod commands;
pub mod cron;
pub mod file;
pub mod serve;
pub mod tick;
