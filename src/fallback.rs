//! The fallback walk (pure): which tool to try next after a failure or an
//! open breaker. Depth-first in manifest order; a tool already tried is
//! skipped (so the reference's geo↔ipinfo cycle terminates); hops stop at
//! `max_depth` (`GATHM_MAX_FALLBACK_DEPTH`, default 3).

use std::collections::VecDeque;

/// A candidate and its hop depth (0 = the tool asked for).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hop {
    /// Tool name.
    pub tool: String,
    /// Hops from the original tool.
    pub depth: u32,
}

/// The state of one walk.
#[derive(Debug, Clone)]
pub struct Walk {
    queue: VecDeque<Hop>,
    tried: Vec<String>,
    max_depth: u32,
    /// Names skipped because they were already tried (cycles).
    pub skipped_cycles: Vec<String>,
    /// Names not queued because the depth limit was reached.
    pub skipped_depth: Vec<String>,
}

impl Walk {
    /// Start with the original tool.
    pub fn new(tool: &str, max_depth: u32) -> Walk {
        Walk {
            queue: VecDeque::from([Hop {
                tool: tool.to_string(),
                depth: 0,
            }]),
            tried: Vec::new(),
            max_depth,
            skipped_cycles: Vec::new(),
            skipped_depth: Vec::new(),
        }
    }

    /// The next tool to try, marking it tried.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Option<Hop> {
        while let Some(h) = self.queue.pop_front() {
            if self.tried.contains(&h.tool) {
                self.skipped_cycles.push(h.tool);
                continue;
            }
            self.tried.push(h.tool.clone());
            return Some(h);
        }
        None
    }

    /// After `from` failed (or was refused), queue its fallbacks first, in order.
    pub fn failed(&mut self, from: &Hop, fallbacks: &[String]) {
        let depth = from.depth + 1;
        if depth > self.max_depth {
            self.skipped_depth.extend(fallbacks.iter().cloned());
            return;
        }
        for f in fallbacks.iter().rev() {
            if self.tried.contains(f) {
                self.skipped_cycles.push(f.clone());
                continue;
            }
            self.queue.push_front(Hop {
                tool: f.clone(),
                depth,
            });
        }
    }

    /// The next candidate, without taking it (already-tried names are
    /// skipped by `next`, so this may name one that will be skipped).
    pub fn peek(&self) -> Option<&Hop> {
        self.queue.iter().find(|h| !self.tried.contains(&h.tool))
    }

    /// Tools tried so far.
    pub fn tried(&self) -> &[String] {
        &self.tried
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn walk(graph: &[(&str, &[&str])], start: &str, max: u32) -> Vec<String> {
        let mut w = Walk::new(start, max);
        let mut order = vec![];
        while let Some(h) = w.next() {
            order.push(h.tool.clone());
            let fb: Vec<String> = graph
                .iter()
                .find(|(n, _)| *n == h.tool)
                .map(|(_, f)| f.iter().map(|s| s.to_string()).collect())
                .unwrap_or_default();
            w.failed(&h, &fb);
        }
        order
    }

    #[test]
    fn cycle_terminates() {
        let g: &[(&str, &[&str])] = &[("geo", &["ipinfo"]), ("ipinfo", &["geo"])];
        assert_eq!(walk(g, "geo", 3), vec!["geo", "ipinfo"]);
    }

    #[test]
    fn depth_first_in_order_with_limit() {
        let g: &[(&str, &[&str])] = &[("a", &["b", "c"]), ("b", &["d"]), ("d", &["e"])];
        assert_eq!(walk(g, "a", 3), vec!["a", "b", "d", "e", "c"]);
        assert_eq!(walk(g, "a", 1), vec!["a", "b", "c"]);
        assert_eq!(walk(g, "a", 0), vec!["a"]);
    }
}
