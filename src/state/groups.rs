//! Concurrency groups that hold across processes on one machine.
//!
//! A group `G` with `max_concurrent: N` is the directory
//! `$GATHM_HOME/groups/G/` with the files `slot-0.lock` … `slot-{N-1}.lock`.
//! A run holds a slot by holding an exclusive `flock` on one of them for as
//! long as it runs: the kernel frees it when the process ends, so a crashed
//! or killed holder never leaves the count high. Waiters queue in FIFO order
//! with tickets: `queue.lock` serialises the bookkeeping, `next` holds the
//! next ticket number, and each waiter holds a lock on its own
//! `wait-<ticket>` file (so a killed waiter is seen as gone and skipped).
//! Only the waiter with the lowest live ticket may take a free slot.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::runner::{self, Cancel};

/// A held slot; dropping it frees the slot.
pub struct Slot {
    _held: Box<dyn Send + Sync>,
    /// The group.
    pub group: String,
    /// Which slot (0-based).
    pub index: u32,
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slot")
            .field("group", &self.group)
            .field("index", &self.index)
            .finish()
    }
}

impl Slot {
    /// A slot held by `guard` (a file lock here, a renewed lease on Redis):
    /// dropping the slot drops the guard, which frees it.
    pub fn held_by(group: &str, index: u32, guard: Box<dyn Send + Sync>) -> Slot {
        Slot {
            _held: guard,
            group: group.to_string(),
            index,
        }
    }
}

/// Why a slot was not acquired.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// Every slot is taken and the caller asked not to wait (`--no-wait`).
    Busy {
        /// The group.
        group: String,
    },
    /// `queue_size` runs are already waiting.
    QueueFull {
        /// The group.
        group: String,
        /// Waiting runs.
        waiting: usize,
    },
    /// The wait bound (`--wait-timeout`) passed.
    TimedOut {
        /// The group.
        group: String,
        /// Seconds waited.
        waited: f64,
    },
    /// Interrupted or cancelled while waiting.
    Cancelled,
    /// The group's state directory cannot be used: refused (fail closed).
    State {
        /// The group.
        group: String,
        /// The OS error and path.
        error: String,
    },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Busy { group } => write!(f, "concurrency group {group:?} is full (--no-wait)"),
            Refusal::QueueFull { group, waiting } => write!(
                f,
                "concurrency group {group:?} is full and {waiting} runs are already waiting (queue_size)"
            ),
            Refusal::TimedOut { group, waited } => write!(
                f,
                "no slot in concurrency group {group:?} after waiting {waited:.1} s"
            ),
            Refusal::Cancelled => write!(f, "cancelled while waiting for a concurrency slot"),
            Refusal::State { group, error } => write!(
                f,
                "concurrency group {group:?} cannot be enforced, so the run is refused: {error}"
            ),
        }
    }
}

/// How to wait.
#[derive(Debug, Clone, Default)]
pub struct Wait {
    /// Refuse at once instead of waiting.
    pub no_wait: bool,
    /// Give up after this many seconds.
    pub timeout: Option<f64>,
    /// Stops the wait.
    pub cancel: Cancel,
}

/// The directory of group `name` under `root` (`$GATHM_HOME/groups`).
pub fn dir(root: &Path, name: &str) -> PathBuf {
    root.join(name)
}

fn err(group: &str, path: &Path, e: std::io::Error) -> Refusal {
    Refusal::State {
        group: group.to_string(),
        error: format!("{}: {e}", path.display()),
    }
}

fn open_rw(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
}

fn try_slot(dir: &Path, group: &str, max: u32) -> Result<Option<Slot>, Refusal> {
    for i in 0..max {
        let p = dir.join(format!("slot-{i}.lock"));
        let f = open_rw(&p).map_err(|e| err(group, &p, e))?;
        match f.try_lock() {
            Ok(()) => {
                return Ok(Some(Slot::held_by(group, i, Box::new(f))));
            }
            Err(std::fs::TryLockError::WouldBlock) => {}
            Err(std::fs::TryLockError::Error(e)) => return Err(err(group, &p, e)),
        }
    }
    Ok(None)
}

/// Live waiters' tickets (stale ones, whose process is gone, are removed).
fn live_tickets(dir: &Path) -> Vec<u64> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let name = e.file_name();
        let Some(t) = name
            .to_str()
            .and_then(|n| n.strip_prefix("wait-"))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        let Ok(f) = File::open(e.path()) else {
            continue;
        };
        match f.try_lock() {
            Ok(()) => {
                // Nobody holds it: its waiter is gone.
                let _ = std::fs::remove_file(e.path());
            }
            Err(_) => out.push(t),
        }
    }
    out.sort_unstable();
    out
}

struct Ticket {
    n: u64,
    path: PathBuf,
    _file: File,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn take_ticket(dir: &Path, group: &str) -> Result<Ticket, Refusal> {
    let p = dir.join("next");
    let mut f = open_rw(&p).map_err(|e| err(group, &p, e))?;
    let mut s = String::new();
    f.read_to_string(&mut s).map_err(|e| err(group, &p, e))?;
    let n = s.trim().parse::<u64>().unwrap_or(0);
    f.seek(SeekFrom::Start(0)).map_err(|e| err(group, &p, e))?;
    f.set_len(0).map_err(|e| err(group, &p, e))?;
    f.write_all((n + 1).to_string().as_bytes())
        .map_err(|e| err(group, &p, e))?;
    let path = dir.join(format!("wait-{n:020}"));
    let file = open_rw(&path).map_err(|e| err(group, &path, e))?;
    file.lock().map_err(|e| err(group, &path, e))?;
    Ok(Ticket {
        n,
        path,
        _file: file,
    })
}

/// Hold `queue.lock` for a short critical section.
fn with_queue<R>(dir: &Path, group: &str, f: impl FnOnce() -> R) -> Result<R, Refusal> {
    let p = dir.join("queue.lock");
    let q = open_rw(&p).map_err(|e| err(group, &p, e))?;
    q.lock().map_err(|e| err(group, &p, e))?;
    let r = f();
    drop(q);
    Ok(r)
}

/// Acquire a slot of group `name` (at most `max` at once, at most `queue`
/// waiting), waiting in FIFO order as `wait` says. `on_wait` is called once
/// if the caller has to wait (to show it on a terminal).
pub fn acquire(
    root: &Path,
    name: &str,
    max: u32,
    queue: u32,
    wait: &Wait,
    on_wait: &mut dyn FnMut(),
) -> Result<Slot, Refusal> {
    let d = dir(root, name);
    std::fs::create_dir_all(&d).map_err(|e| err(name, &d, e))?;
    let max = max.max(1);
    // Fast path: nobody waiting and a slot free.
    let first = with_queue(&d, name, || {
        if live_tickets(&d).is_empty() {
            try_slot(&d, name, max)
        } else {
            Ok(None)
        }
    })??;
    if let Some(s) = first {
        return Ok(s);
    }
    if wait.no_wait {
        return Err(Refusal::Busy { group: name.into() });
    }
    let ticket = with_queue(&d, name, || {
        let waiting = live_tickets(&d).len();
        if waiting >= queue as usize {
            return Err(Refusal::QueueFull {
                group: name.into(),
                waiting,
            });
        }
        take_ticket(&d, name)
    })??;
    on_wait();
    let t0 = Instant::now();
    let mut pause = Duration::from_millis(2);
    loop {
        let got = with_queue(&d, name, || {
            let live = live_tickets(&d);
            if live.first().is_some_and(|&t| t < ticket.n) {
                return Ok(None);
            }
            try_slot(&d, name, max)
        })??;
        if let Some(s) = got {
            drop(ticket);
            return Ok(s);
        }
        if runner::interrupted() || wait.cancel.is_cancelled() {
            return Err(Refusal::Cancelled);
        }
        let waited = t0.elapsed().as_secs_f64();
        if let Some(limit) = wait.timeout
            && waited >= limit
        {
            return Err(Refusal::TimedOut {
                group: name.into(),
                waited,
            });
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// How many slots of group `name` are held now, and how many runs wait.
pub fn occupancy(root: &Path, name: &str, max: u32) -> (u32, usize) {
    let d = dir(root, name);
    let mut held = 0;
    for i in 0..max {
        let p = d.join(format!("slot-{i}.lock"));
        if let Ok(f) = File::open(&p)
            && f.try_lock().is_err()
        {
            held += 1;
        }
    }
    (held, live_tickets(&d).len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_bounded_and_freed_on_drop() {
        let t = tempfile::tempdir().unwrap();
        let w = Wait {
            no_wait: true,
            ..Wait::default()
        };
        let a = acquire(t.path(), "g", 2, 10, &w, &mut || {}).unwrap();
        let b = acquire(t.path(), "g", 2, 10, &w, &mut || {}).unwrap();
        assert_ne!(a.index, b.index);
        assert_eq!(occupancy(t.path(), "g", 2), (2, 0));
        let e = acquire(t.path(), "g", 2, 10, &w, &mut || {}).unwrap_err();
        assert!(matches!(e, Refusal::Busy { .. }), "{e:?}");
        drop(a);
        let c = acquire(t.path(), "g", 2, 10, &w, &mut || {}).unwrap();
        assert_eq!(occupancy(t.path(), "g", 2).0, 2);
        drop((b, c));
        assert_eq!(occupancy(t.path(), "g", 2), (0, 0));
    }

    #[test]
    fn a_waiter_times_out_and_the_queue_bound_holds() {
        let t = tempfile::tempdir().unwrap();
        let held = acquire(t.path(), "g", 1, 0, &Wait::default(), &mut || {}).unwrap();
        let mut waited = false;
        let w = Wait {
            timeout: Some(0.05),
            ..Wait::default()
        };
        let e = acquire(t.path(), "g", 1, 1, &w, &mut || waited = true).unwrap_err();
        assert!(matches!(e, Refusal::TimedOut { .. }), "{e:?}");
        assert!(waited);
        // queue_size 0: nobody may wait.
        let e = acquire(t.path(), "g", 1, 0, &w, &mut || {}).unwrap_err();
        assert!(matches!(e, Refusal::QueueFull { .. }), "{e:?}");
        drop(held);
    }

    #[test]
    fn an_unusable_state_directory_refuses() {
        let t = tempfile::tempdir().unwrap();
        let file = t.path().join("groups");
        std::fs::write(&file, "not a directory").unwrap();
        let e = acquire(&file, "g", 1, 1, &Wait::default(), &mut || {}).unwrap_err();
        assert!(matches!(e, Refusal::State { .. }), "{e:?}");
        assert!(e.to_string().contains("refused"), "{e}");
    }
}
