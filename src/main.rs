//! The `gathm` binary: everything lives in the library.

fn main() -> std::process::ExitCode {
    let code = gathm::entry(std::env::args_os());
    std::process::ExitCode::from(u8::try_from(code).unwrap_or(1))
}
