//! The dependency graph of a pipeline, as plain indices: `needs[v]` lists the
//! nodes that `v` needs (edges point backwards in time). Cycle detection
//! (named in run order), transitive dependencies and a run order.

use std::collections::BTreeSet;

/// Every dependency cycle, each as step indices in run order starting from
/// its first step in the file and repeating it at the end (`a -> b -> a`).
pub fn cycles(needs: &[Vec<usize>]) -> Vec<Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    fn dfs(
        v: usize,
        needs: &[Vec<usize>],
        mark: &mut [Mark],
        stack: &mut Vec<usize>,
        out: &mut Vec<Vec<usize>>,
    ) {
        mark[v] = Mark::Active;
        stack.push(v);
        for &w in &needs[v] {
            match mark[w] {
                Mark::New => dfs(w, needs, mark, stack, out),
                Mark::Active => {
                    let from = stack.iter().position(|&x| x == w).unwrap_or(0);
                    let mut c: Vec<usize> = stack[from..].to_vec();
                    // `needs` points backwards in time: list the cycle in run
                    // order, starting from its first step in the file.
                    c.reverse();
                    let m = c.iter().enumerate().min_by_key(|x| x.1).map_or(0, |x| x.0);
                    c.rotate_left(m);
                    c.push(c[0]);
                    out.push(c);
                }
                Mark::Done => {}
            }
        }
        stack.pop();
        mark[v] = Mark::Done;
    }
    let mut mark = vec![Mark::New; needs.len()];
    let mut out = Vec::new();
    for v in 0..needs.len() {
        if mark[v] == Mark::New {
            dfs(v, needs, &mut mark, &mut Vec::new(), &mut out);
        }
    }
    out
}

/// The steps each step depends on, directly or not (by index).
pub fn ancestors(needs: &[Vec<usize>]) -> Vec<BTreeSet<usize>> {
    (0..needs.len())
        .map(|v| {
            let mut seen = BTreeSet::new();
            let mut todo: Vec<usize> = needs[v].clone();
            while let Some(w) = todo.pop() {
                if seen.insert(w) {
                    todo.extend(needs[w].iter().copied());
                }
            }
            seen
        })
        .collect()
}

/// Every node after all the nodes it needs; a cycle is broken at its first
/// remaining node so that the result is always a permutation.
pub fn order(needs: &[Vec<usize>]) -> Vec<usize> {
    let mut done = vec![false; needs.len()];
    let mut out = Vec::new();
    while out.len() < needs.len() {
        let before = out.len();
        for v in 0..needs.len() {
            if !done[v] && needs[v].iter().all(|&w| done[w] || w == v) {
                done[v] = true;
                out.push(v);
            }
        }
        if out.len() == before {
            // A cycle: take the first remaining step.
            if let Some(v) = (0..needs.len()).find(|&v| !done[v]) {
                done[v] = true;
                out.push(v);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_cycles_in_run_order() {
        // 0 needs 2, 1 needs 0, 2 needs 1; 3 is outside.
        let g = vec![vec![2], vec![0], vec![1, 3], vec![]];
        assert_eq!(cycles(&g), [vec![0, 1, 2, 0]]);
        assert_eq!(cycles(&[vec![0]]), [vec![0, 0]]);
        assert!(cycles(&[vec![], vec![0], vec![0, 1]]).is_empty());
        // Two separate cycles.
        assert_eq!(cycles(&[vec![1], vec![0], vec![3], vec![2]]).len(), 2);
    }

    #[test]
    fn ancestors_are_transitive() {
        let g = vec![vec![], vec![0], vec![1], vec![]];
        let a = ancestors(&g);
        assert_eq!(a[2], BTreeSet::from([0, 1]));
        assert!(a[3].is_empty());
        // Cycles terminate.
        assert_eq!(ancestors(&[vec![1], vec![0]])[0], BTreeSet::from([0, 1]));
    }

    #[test]
    fn order_respects_needs() {
        let g = vec![vec![1], vec![2], vec![], vec![]];
        assert_eq!(order(&g), [2, 3, 1, 0]);
        let with_cycle = vec![vec![1], vec![0], vec![]];
        let mut o = order(&with_cycle);
        o.sort_unstable();
        assert_eq!(o, [0, 1, 2]);
    }
}
