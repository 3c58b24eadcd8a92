//! `ekspresi`: the kiosk's commands on any machine, without camera or GPIO (demo, replay,
//! detect, classify, check). The Pi's `kiosk` binary is the same CLI on real hardware.

fn main() -> std::process::ExitCode {
    firmware::cli::run(&firmware::board::NoBoard)
}
