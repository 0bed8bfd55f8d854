//! Concurrency slots for `parallel` and pipelines: a global limit (`-j`) and a
//! per-tool limit (the manifest's `max_concurrency`), both counted within one
//! gathm invocation. Pure bookkeeping: the dispatchers ask before launching
//! and give the slot back when a run ends.

use std::collections::HashMap;

use crate::config::Context;

/// The number of CPUs (the default `-j`), at least 1.
pub fn default_jobs() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// Counters of running work, overall and per tool.
#[derive(Debug, Clone)]
pub struct Slots {
    jobs: usize,
    running: usize,
    caps: HashMap<String, usize>,
    per_tool: HashMap<String, usize>,
}

impl Slots {
    /// At most `jobs` runs at once (0 is treated as 1).
    pub fn new(jobs: usize) -> Slots {
        Slots {
            jobs: jobs.max(1),
            running: 0,
            caps: HashMap::new(),
            per_tool: HashMap::new(),
        }
    }

    /// Limit `tool` to `cap` runs at once (0 is treated as 1).
    pub fn cap(&mut self, tool: &str, cap: u32) {
        self.caps.insert(tool.to_string(), (cap as usize).max(1));
    }

    /// Read the `max_concurrency` of each named tool from its manifest.
    pub fn cap_from_manifests<'a>(
        &mut self,
        ctx: &Context,
        tools: impl IntoIterator<Item = &'a str>,
    ) {
        for t in tools {
            if self.caps.contains_key(t) {
                continue;
            }
            if let Ok(Some(tool)) = ctx.search.find(t)
                && let Some(n) = tool.manifest.max_concurrency
            {
                self.cap(t, n);
            }
        }
    }

    /// Whether a run of `tool` could start now.
    pub fn available(&self, tool: &str) -> bool {
        self.running < self.jobs
            && self
                .caps
                .get(tool)
                .is_none_or(|cap| self.per_tool.get(tool).copied().unwrap_or(0) < *cap)
    }

    /// Whether every global slot is taken.
    pub fn full(&self) -> bool {
        self.running >= self.jobs
    }

    /// Take a slot for `tool`; false (and nothing taken) when none is free.
    pub fn acquire(&mut self, tool: &str) -> bool {
        if !self.available(tool) {
            return false;
        }
        self.running += 1;
        *self.per_tool.entry(tool.to_string()).or_insert(0) += 1;
        true
    }

    /// Give back a slot taken for `tool`.
    pub fn release(&mut self, tool: &str) {
        self.running = self.running.saturating_sub(1);
        if let Some(n) = self.per_tool.get_mut(tool) {
            *n = n.saturating_sub(1);
        }
    }

    /// Runs in progress.
    pub fn running(&self) -> usize {
        self.running
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn global_and_per_tool_limits() {
        let mut s = Slots::new(3);
        s.cap("one", 1);
        assert!(s.acquire("one"));
        assert!(!s.available("one"));
        assert!(!s.acquire("one"));
        assert!(s.acquire("other"));
        assert!(s.acquire("other"));
        assert!(s.full());
        assert!(!s.acquire("third"));
        s.release("one");
        assert!(!s.full());
        assert!(s.acquire("one"));
        assert_eq!(s.running(), 3);
    }

    #[test]
    fn zero_means_one() {
        let mut s = Slots::new(0);
        s.cap("t", 0);
        assert!(s.acquire("t"));
        assert!(!s.acquire("u"));
    }
}
