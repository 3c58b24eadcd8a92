//! `kiosk`: the Ekspresi kiosk on a Raspberry Pi — the firmware's command line on this
//! crate's camera and GPIO (`kiosk run` is what the systemd unit starts).

fn main() -> std::process::ExitCode {
    firmware::cli::run(&board::pi::PiBoard)
}
