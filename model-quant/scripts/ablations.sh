#!/usr/bin/env bash
# What each training option buys on the sharp rows (issue 11, item 2): short runs of the
# shipped `lenet5-wide` recipe, each changing one thing, all on the same validation split and
# seed, selected and compared on validation only (never PublicTest). Each run checkpoints
# every epoch and this script resumes any unfinished one, so it can be stopped and started
# again across sessions (commit the run folders' config.json, log.jsonl and training.png to
# keep the results; the checkpoints of finished runs are not needed).
#
# Usage: model-quant/scripts/ablations.sh RUNS_DIR [EPOCHS] [VARIANT...]
#   RUNS_DIR  where the run folders go (one per variant)
#   EPOCHS    the cosine schedule of every variant but "longer" (which gets twice it); default 10
#   VARIANT   run only these (default: all, in the order below)
# Environment: MODEL_QUANT (binary, default target/release/model-quant), BACKEND (flex or
# libtorch, default flex), DATA (default ../shared/fer2013/fer2013.csv.gz).
#
# Then `model-quant/scripts/ablations.sh RUNS_DIR table` prints the comparison. Test-time
# mirror averaging needs no run of its own: `model-quant validate --run RUNS_DIR/baseline`.
set -euo pipefail
cd "$(dirname "$0")/../.."
runs="${1:?usage: ablations.sh RUNS_DIR [EPOCHS] [VARIANT...]}"
shift
binary="${MODEL_QUANT:-target/release/model-quant}"
backend="${BACKEND:-flex}"
data="${DATA:-../shared/fer2013/fer2013.csv.gz}"

# name | options on top of the baseline recipe (lenet5-wide: batch-norm, dropout 0.2,
# shift ±10 %, rotation ±10°, flips, Adam 1e-3 → 1e-5 cosine, batch 64)
variants=(
  "baseline|"
  "no-batch-norm|--no-batch-norm"
  "no-dropout|--dropout 0"
  "dropout-0.5|--dropout 0.5"
  "label-smoothing-0.1|--label-smoothing 0.1"
  "class-weights|--class-weights"
  "no-augmentation|--no-augment"
  "strong-augmentation|--max-shift 0.2 --max-rotation-deg 20"
  "longer|LONGER"
  # issue 30's recipe options (session 19 on): erasing, mixup, distillation from the three
  # teachers (restore the VGG teachers' best.bpk first: model-quant/runs/README.md)
  "erasing-0.5|--erase-probability 0.5"
  "mixup-0.2|--mixup 0.2"
  "crop-40|--crop 40"
  "crop-44|--crop 44"
  "distill|--teacher model-quant/runs/vgg-s13 --teacher model-quant/runs/vgg-lite-s15 --teacher model-quant/runs/alexnet-s13"
  # issue 30's optimiser and schedule (session 21): the long runs' SGD + Nesterov with
  # reduce-on-plateau, at the baseline's length
  "sgd-plateau|--optimizer sgd-nesterov --momentum 0.9 --learning-rate 0.01 --weight-decay 1e-4 --schedule plateau --plateau-factor 0.75 --plateau-patience 5"
)

table() {
  python3 - "$runs" <<'PY'
import json, pathlib, sys
runs = pathlib.Path(sys.argv[1])
print("| variant | epochs done | best epoch | best validation | train acc. (augmented) at best |")
print("|---|---:|---:|---:|---:|")
for run in sorted(p for p in runs.iterdir() if (p / "log.jsonl").is_file()):
    log = [json.loads(l) for l in (run / "log.jsonl").read_text().splitlines() if l.strip()]
    if not log:
        continue
    planned = json.loads((run / "config.json").read_text())["epochs"]
    best = max(log, key=lambda e: e["validation_accuracy"])
    print(f"| {run.name} | {len(log)} of {planned} | {best['epoch']} | "
          f"{best['validation_accuracy']:.4f} | {best['train_accuracy']:.4f} |")
PY
}

if [[ "${1:-}" == "table" ]]; then
  table
  exit 0
fi
epochs="${1:-10}"
[[ $# -gt 0 ]] && shift
[[ "$epochs" =~ ^[1-9][0-9]*$ ]] || { echo "EPOCHS must be a positive whole number, not '$epochs'" >&2; exit 2; }
wanted=("$@")

mkdir -p "$runs"
for variant in "${variants[@]}"; do
  name="${variant%%|*}"
  options="${variant#*|}"
  if [[ ${#wanted[@]} -gt 0 && ! " ${wanted[*]} " == *" $name "* ]]; then
    continue
  fi
  run_epochs="$epochs"
  if [[ "$options" == LONGER ]]; then
    run_epochs=$((epochs * 2))
    options=""
  fi
  resume=()
  [[ -d "$runs/$name/checkpoint" ]] && resume=(--resume)
  echo "== $name: $run_epochs epochs ${options:-(baseline recipe)}" >&2
  # shellcheck disable=SC2086  # options are words by design
  "$binary" train --data "$data" --run "$runs/$name" --arch lenet5-wide \
    --epochs "$run_epochs" --backend "$backend" $options "${resume[@]}"
done
table
