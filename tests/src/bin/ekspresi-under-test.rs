//! The `ekspresi` binary, built again inside this crate: the workspace tests here replay
//! lessons through the real command line, and a test can only name its own package's
//! binaries (`CARGO_BIN_EXE_*`). Same code as `firmware/src/main.rs`, one line.

fn main() -> std::process::ExitCode {
    firmware::cli::run(&firmware::board::NoBoard)
}
