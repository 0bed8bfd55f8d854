//! `gathm run`: argv exactness, envelope, streams, exit codes, timeouts.

use crate::harness::*;

#[test]
fn argv_is_passed_exactly() {
    let s = Sandbox::new(&["ok"]);
    let o = s.run(&["run", "ok", "a b", "c", "--json", "it's \"q\"", ""]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Vec<String> = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v, ["a b", "c", "--json", "it's \"q\"", ""]);
}
