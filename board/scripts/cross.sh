#!/usr/bin/env bash
# The Raspberry Pi (64-bit Raspberry Pi OS, aarch64) build, without Docker.
#
#   board/scripts/cross.sh setup    install Debian's cross toolchain (root; idempotent)
#   board/scripts/cross.sh build    release kiosk for aarch64, stripped, with size and glibc check
#   board/scripts/cross.sh test     board + firmware unit tests for aarch64 under qemu-user
#   board/scripts/cross.sh demo     the demo lesson run by the aarch64 kiosk under qemu, ffprobed
#   board/scripts/cross.sh parity   int8 top-1 on 500 FER faces, every listed model: x86 vs aarch64 under
#                                   qemu's default CPU, Cortex-A76, A72 and A53 (needs ../shared)
#   board/scripts/cross.sh all      all of the above, in that order
#
# Toolchain: Debian bookworm's rustc-web/cargo-web (1.96, from bookworm-security) with its
# arm64 std (libstd-rust-web-dev:arm64, which must be the same version), gcc-aarch64-linux-gnu
# for linking and openh264's C++, libclang for v4l's bindgen, qemu-user to run the results.
# `rustup target add` is not used: toolchain downloads are not available on our machines.
# Only the crates that go on the device (board, firmware) are cross-built.
set -euo pipefail

repo="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$repo"
target=aarch64-unknown-linux-gnu
target_dir="$repo/target/cross"
dist="$target_dir/dist"
max_glibc=2.36 # Raspberry Pi OS bookworm

# Debian's tools, not the rustup proxies that come first in PATH (without RUSTDOC the
# doctests fail with E0514: std built by another compiler).
debian_cargo() {
    RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc CARGO_TARGET_DIR="$target_dir" \
        /usr/bin/cargo "$@"
}

setup() {
    local packages=(rustc-web cargo-web libstd-rust-web-dev:arm64 gcc-aarch64-linux-gnu
        g++-aarch64-linux-gnu libc6-dev-arm64-cross libclang1-14 libclang-common-14-dev
        qemu-user binutils-aarch64-linux-gnu file)
    if dpkg -s "${packages[@]}" >/dev/null 2>&1; then
        echo "cross toolchain already installed"
    else
        local sudo=""
        [[ $EUID -eq 0 ]] || sudo=sudo
        $sudo dpkg --add-architecture arm64
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${packages[@]}"
    fi
    local host_std arm_std
    host_std="$(dpkg-query -W -f='${Version}' rustc-web)"
    arm_std="$(dpkg-query -W -f='${Version}' libstd-rust-web-dev:arm64)"
    [[ "$host_std" == "$arm_std" ]] || {
        echo "rustc-web $host_std and libstd-rust-web-dev:arm64 $arm_std differ" >&2
        exit 1
    }
    /usr/bin/rustc --version
}

build() {
    debian_cargo build --release --target "$target" -p board --bin kiosk
    mkdir -p "$dist"
    aarch64-linux-gnu-strip -o "$dist/kiosk" "$target_dir/$target/release/kiosk"
    file -b "$dist/kiosk"
    printf 'binary sizes (aarch64): %s unstripped, %s stripped\n' \
        "$(du -h "$target_dir/$target/release/kiosk" | cut -f1)" "$(du -h "$dist/kiosk" | cut -f1)"
    check_glibc "$dist/kiosk"
}

# Fails when the binary needs a newer glibc than Raspberry Pi OS bookworm ships.
check_glibc() {
    local needed
    needed="$(aarch64-linux-gnu-objdump -T "$1" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' |
        sort -V | tail -1)"
    echo "glibc required: $needed (Raspberry Pi OS bookworm has $max_glibc)"
    if [[ "$(printf '%s\n%s\n' "$needed" "$max_glibc" | sort -V | tail -1)" != "$max_glibc" ]]; then
        echo "the aarch64 kiosk needs glibc $needed > $max_glibc" >&2
        exit 1
    fi
}

run_tests() {
    # Unit tests only: the end-to-end suite (firmware/tests/kiosk_e2e.rs) runs the whole
    # pipeline per test, which qemu-user emulates about 50× slower than native — 8 of its
    # tests took 3,295 s in CI with the full-resolution LeNet (stop 17), over CI's budget.
    # It runs natively on x86 in scripts/test.sh; on aarch64 the `demo` step runs the same
    # pipeline end to end once and `parity` checks the model's numbers face by face.
    # Skipped under emulation (need real hardware): the camera streaming itself (no V4L2
    # device here; its error paths are tested) and GPIO output (rppal needs a Pi).
    # (The e2e suite can still be run emulated by hand: EKSPRESI_KIOSK_RUNNER=qemu-aarch64.)
    debian_cargo test --release --target "$target" -p board -p firmware --lib --bins
}

demo() {
    debian_cargo build --release --target "$target" -p board --bin kiosk
    local out
    out="$(mktemp -d)"
    # `kiosk demo`, as on an installed Pi: the clip built into the binary, all 48 frames, the
    # whole pipeline end to end: seconds under qemu since the student scan and tracking
    # (before them the whole clip took 12.5 min, and this step replayed only 18 frames).
    qemu-aarch64 "$target_dir/$target/release/kiosk" demo --out "$out/data" >/dev/null
    out="$out/data"
    local session
    session="$(find "$out/sessions" -mindepth 2 -maxdepth 2 -type d | head -1)"
    for file in video.mp4 summary.txt summary.json timeline.csv timeline.png MANIFEST COMPLETE; do
        [[ -s "$session/$file" ]] || { echo "aarch64 demo: $file missing" >&2; exit 1; }
    done
    local frames
    frames="$(ffprobe -v error -count_frames -select_streams v:0 \
        -show_entries stream=codec_name,nb_read_frames -of csv=p=0 "$session/video.mp4")"
    echo "aarch64 demo: $session: video $frames (codec,frames)"
    [[ "${frames#*,}" == 48 ]] || { echo "aarch64 demo: expected 48 frames, got $frames" >&2; exit 1; }
    rm -rf "$(dirname "$out")"
}

parity() {
    local data="${FER2013:-$repo/../shared/fer2013/fer2013.csv.gz}"
    if [[ ! -f "$data" ]]; then
        echo "PARITY NOT RUN: FER-2013 not found at $data (set FER2013=...)" >&2
        exit 1
    fi
    cargo build --release --workspace --example face_probs
    debian_cargo build --release --target "$target" -p firmware --example face_probs
    local x86 arm model
    x86="$(mktemp)" arm="$(mktemp)"
    # Every model models.json lists: the kiosk may be configured to run any of them.
    for model in $(python3 -c 'import json, sys; print(" ".join(m["name"] for m in json.load(open(sys.argv[1]))["models"]))' \
        "$repo/firmware/models/models.json"); do
        echo "model $model:"
        "$repo/target/release/examples/face_probs" "$data" 500 "$model" >"$x86"
        # Each of tract's aarch64 integer paths: qemu's default CPU (max: SVE, so tract's SVE
        # kernels), the Pi 5's Cortex-A76 (dot-product instructions: the SDOT kernel), the
        # Pi 4's Cortex-A72 and the Pi 3 / Zero 2 W's Cortex-A53 (neither: the SMLAL kernel).
        # Under qemu-user /proc/cpuinfo is this machine's, so for the A72 and A53 tract's CPU
        # kind is named as the real core would report it (the A76 is "generic" to tract).
        for cpu in max cortex-a76 cortex-a72 cortex-a53; do
            local run=(qemu-aarch64 -cpu "$cpu")
            if [[ "$cpu" == cortex-a72 || "$cpu" == cortex-a53 ]]; then
                run=(env "TRACT_CPU_AARCH64_KIND=$cpu" "${run[@]}")
            fi
            echo "  qemu -cpu $cpu:"
            "${run[@]}" "$target_dir/$target/release/examples/face_probs" "$data" 500 "$model" >"$arm"
            python3 "$repo/board/scripts/compare_probs.py" "$x86" "$arm"
        done
    done
    rm -f "$x86" "$arm"
}

case "${1:-}" in
    setup) setup ;;
    build) build ;;
    test) run_tests ;;
    demo) demo ;;
    parity) parity ;;
    all) setup && build && run_tests && demo && parity ;;
    *) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
