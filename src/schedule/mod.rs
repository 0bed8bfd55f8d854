//! Schedules and concurrency groups (STYLE.md §7: `schedule/`): the
//! `gathm.yaml` configuration file, cron expressions in a time zone, the
//! cross-process group slots, and running due slots without a server
//! (`gathm schedule tick`).

pub mod commands;
pub mod cron;
pub mod file;
pub mod serve;
pub mod tick;
