#!/usr/bin/env bash
# The power-loss soak (outside CI; CI runs the short versions in firmware/tests/kiosk_e2e.rs):
# KILLS SIGKILLs of the kiosk at random moments of the demo clip played in real time, then
# POWER_LOSSES simulated power losses (a kill, then the video's tail cut and zero-filled or
# garbled, a torn line in seconds.csv). Each session must recover, its video decode cleanly
# and its summary cover the lesson to within 2 s of the cut. Prints the totals and the worst
# loss. About 6 s a run.
#   scripts/soak.sh [KILLS [POWER_LOSSES]]      (default 100 20)
set -euo pipefail
cd "$(dirname "$0")/.."
kills="${1:-100}" losses="${2:-20}"
[[ "$kills$losses" =~ ^[0-9]+$ ]] || { echo "soak.sh: counts must be whole numbers" >&2; exit 2; }
log="$(mktemp)"
status=0
EKSPRESI_SOAK_KILLS="$kills" EKSPRESI_SOAK_POWER_LOSSES="$losses" \
    cargo test --release --workspace --test kiosk_e2e soak -- --ignored --nocapture >"$log" 2>&1 ||
    status=$?
grep -E '^(soak:|test |thread .*panicked|run [0-9])' "$log"
echo "exit $status (full log: $log)"
exit "$status"
