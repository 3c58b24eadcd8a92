#!/usr/bin/env bash
# The project's test command (README): installs what the tests need on a fresh Debian
# machine — ffmpeg (ffprobe checks the recorded MP4s), age (decrypts encrypted video), nasm (OpenH264's fast x86 build),
# rsync + openssh-server/-client (uploads to a real sshd on loopback), chromium (renders the class report),
# mosquitto + mosquitto-clients + openssl (the live class view's broker, set up by board/deploy/broker/),
# opencv-doc (OpenCV's real street clip vtest.avi, which replay must call "insufficient"),
# libclang (bindgen for the v4l camera crate), OpenCV for Python (the detector parity
# tests) and onnxruntime (an independent check of the int8 model) — then runs every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v ffprobe >/dev/null 2>&1 || need_apt+=(ffmpeg)
command -v nasm >/dev/null 2>&1 || need_apt+=(nasm)
command -v age >/dev/null 2>&1 || need_apt+=(age)
command -v rsync >/dev/null 2>&1 || need_apt+=(rsync)
command -v ssh-keygen >/dev/null 2>&1 || need_apt+=(openssh-client)
[ -x /usr/sbin/sshd ] || need_apt+=(openssh-server)
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
[ -f /usr/share/doc/opencv-doc/examples/data/vtest.avi ] || need_apt+=(opencv-doc)
# The live class view's broker, its clients (mosquitto_pub for the ACL test) and the CA the
# broker scripts make.
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need_apt+=(mosquitto)
command -v mosquitto_pub >/dev/null 2>&1 || need_apt+=(mosquitto-clients)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
# bindgen (clang-sys) loads libclang.so / libclang-<N>.so[.*], never libclang-cpp.so.<N>
# (which libclang-cpp14 puts on a new machine): match only what it really loads.
has_libclang() {
  compgen -G '/usr/lib/llvm-*/lib/libclang.so*' >/dev/null ||
    compgen -G '/usr/lib/*-linux-gnu*/libclang-[0-9]*.so*' >/dev/null ||
    compgen -G '/usr/lib/*-linux-gnu*/libclang.so*' >/dev/null
}
has_libclang || need_apt+=(libclang1-14 libclang-common-14-dev)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    # (quiet: apt's progress lines would flood the CI log)
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need_apt[@]}"
  else
    echo "missing ${need_apt[*]}: sudo apt-get install ${need_apt[*]}" >&2
    exit 1
  fi
fi
if ! python3 -c "import cv2" >/dev/null 2>&1; then
  python3 -m pip install -q "opencv-python-headless<5"
fi
# onnxruntime: the independent runtime the shipped int8 model is checked against.
if ! python3 -c "import onnxruntime" >/dev/null 2>&1; then
  python3 -m pip install -q "onnxruntime<2"
fi

# One release build for everything: tests, benches and the demo share its artefacts.
cargo test --release --workspace "$@"
