#!/usr/bin/env bash
# Tune every method on validation, then benchmark it, for one profile on both datasets.
#
#   bash benchmarks/run_all.sh cpu            # the tables committed in benchmarks/results/
#   bash benchmarks/run_all.sh full cuda      # ResNet-18 at 128 px, on a GPU
#
# The two datasets run side by side (they share nothing but the device). Each writes
# benchmarks/results/tune_<dataset>_<profile>.json, the settings it chose, which the
# benchmark then reads through dlfd.profiles, and unlearning_<dataset>_<profile>.{json,md}.
set -euo pipefail
profile=${1:-cpu}
device=${2:-auto}
out=${OUT_DIR:-benchmarks/results}
mkdir -p "$out"
for dataset in orl fashion-mnist; do
  (
    python benchmarks/tune.py --profile "$profile" --dataset "$dataset" --device "$device" \
      --out "$out" >"$out/log_tune_${dataset}_${profile}.txt" 2>&1
    python benchmarks/unlearning.py --profile "$profile" --dataset "$dataset" \
      --device "$device" --out "$out" >"$out/log_bench_${dataset}_${profile}.txt" 2>&1
  ) &
done
wait
