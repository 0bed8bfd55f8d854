//! Printing: data to stdout, diagnostics to stderr, JSON or text. A broken
//! pipe on stdout is not an error.

use std::io::Write;

use serde::Serialize;

/// Print a value as pretty JSON on stdout.
pub fn json<T: Serialize + ?Sized>(v: &T) {
    let mut out = std::io::stdout().lock();
    if serde_json::to_writer_pretty(&mut out, v).is_ok() {
        let _ = out.write_all(b"\n");
    }
    let _ = out.flush();
}

/// Print text on stdout (a newline is added when missing).
pub fn text(s: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(s.as_bytes());
    if !s.ends_with('\n') && !s.is_empty() {
        let _ = out.write_all(b"\n");
    }
    let _ = out.flush();
}

/// Raw bytes on stdout.
pub fn raw_out(b: &[u8]) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(b);
    let _ = out.flush();
}

/// Raw bytes on stderr.
pub fn raw_err(b: &[u8]) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(b);
    let _ = err.flush();
}

/// A `gathm: …` line on stderr.
pub fn error(msg: &str) {
    raw_err(format!("gathm: {msg}\n").as_bytes());
}
