//! `ekspresi`: the kiosk's commands on any machine, without camera or GPIO (demo, replay,
//! detect, classify, check). The Pi's `kiosk` binary is the same CLI on real hardware.

fn main() -> anyhow::Result<()> {
    firmware::cli::main(&firmware::board::NoBoard)
}
