//! The `gathm` binary: everything lives in the library.

fn main() -> std::process::ExitCode {
    gathm::main(std::env::args_os())
}
