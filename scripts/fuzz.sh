#!/usr/bin/env bash
# The long fuzz run (outside CI): every fuzz target of tests/tests/fuzz.rs with its CI case
# count times SCALE (default 100), printing the inputs tried per target. A crash fails the
# run, shrunk to its fewest edits, and is saved in tests/tests/fuzz.regressions: commit that
# file, and every later run (CI's short one too) replays the crash first.
#   scripts/fuzz.sh [SCALE]
set -euo pipefail
cd "$(dirname "$0")/.."
scale="${1:-100}"
[[ "$scale" =~ ^[1-9][0-9]*$ ]] || { echo "fuzz.sh: SCALE must be a positive integer" >&2; exit 2; }
started=$(date +%s)
log="$(mktemp)"
status=0
EKSPRESI_FUZZ_SCALE="$scale" cargo test --release --workspace --test fuzz -- --nocapture >"$log" 2>&1 ||
    status=$?
grep -E '^(fuzz |test result)' "$log"
echo "scale $scale, $(( $(date +%s) - started )) s, exit $status (full log: $log)"
exit "$status"
