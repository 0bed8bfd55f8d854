//! The `gathm` binary: everything lives in the library.
//!
//! This is the C `main`, not Rust's: Rust's runtime start-up (the main
//! thread's stack guard, found by parsing /proc/self/maps; an alternate
//! signal stack) costs about 80 µs per process on the project's machine, a
//! tenth of the budget of `gathm run`. `gathm::entry` does the parts gathm
//! relies on itself (ARCHITECTURE.md, "Process start").

// Under `cargo test` the test harness provides `main`.
#![cfg_attr(not(test), no_main)]

#[cfg(not(test))]
#[allow(unsafe_code)] // the exported C entry point; the library forbids unsafe code
#[unsafe(no_mangle)]
extern "C" fn main(
    _argc: std::ffi::c_int,
    _argv: *const *const std::ffi::c_char,
) -> std::ffi::c_int {
    gathm::entry(std::env::args_os())
}
