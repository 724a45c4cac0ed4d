#!/usr/bin/env bash
# The GPU measurements of issue 17 §5 in one go, for the README's table: about 5 to 8 minutes on
# one H200.
#
#   bash benchmarks/gpu_suite.sh [OUT]          (default OUT: logs/gpu_suite)
#
# Needs a Python with a CUDA build of torch and fgbg installed (PY, default python) and its
# `torchrun` beside it. Makes the default data and dataset first when dataset/stats.json is
# missing. Everything it prints also goes to OUT/summary.txt; each step's full output to OUT/<step>.log.
#
# 1. bench_train --model-only: unet_original at 192 px in bf16 + channels-last, batch 64 and 128,
#    with and without torch.compile, each against fp32 eager NCHW (goal: 2,500 samples/s);
#    the default model the same way;
# 2. the loader's samples/s with 16 worker processes (and 0), and the CPU rows of bench_train;
# 3. torchrun --nproc_per_node=1 through the DDP path under NCCL: 2 epochs, then a resume to 3;
# 4. 50 training steps under torch.cuda.set_sync_debug_mode("error"), each through the transfer and every
#    capture perturbation of the recipe on the device.
set -uo pipefail
PY=${PY:-python}
OUT=${1:-logs/gpu_suite}
BIN=$(dirname "$(command -v "$PY")")
mkdir -p "$OUT"
say() { echo "$*" | tee -a "$OUT/summary.txt"; }
step() {  # step NAME COMMAND...: run it, keep its log, put its result lines in the summary
  local name=$1; shift
  say "== $name: $*"
  if "$@" >"$OUT/$name.log" 2>&1; then
    grep -E "samples/s|sync|ratio|epoch [0-9]+ \(|resum|GPU" "$OUT/$name.log" | tail -n 12 | tee -a "$OUT/summary.txt"
  else
    say "FAILED (exit $?); the last lines of $OUT/$name.log:"
    tail -n 15 "$OUT/$name.log" | tee -a "$OUT/summary.txt"
  fi
}

"$PY" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print('GPU:', torch.cuda.get_device_name())" \
  | tee -a "$OUT/summary.txt" || exit 1
if [ ! -f dataset/stats.json ]; then
  [ -d data ] || "$BIN/fgbg" synth data --out data
  step compose "$PY" stages/compose.py --data data --out dataset/composed
  step split "$PY" stages/split.py --dataset dataset/composed --out dataset/split.json
  step stats "$PY" stages/stats.py --dataset dataset/composed --split dataset/split.json --out dataset/stats.json
fi

for batch in 64 128; do
  step "original_b${batch}" "$PY" benchmarks/bench_train.py --model-only --model unet_original --batch "$batch" --steps 50
  step "original_b${batch}_compile" "$PY" benchmarks/bench_train.py --model-only --model unet_original --batch "$batch" \
    --steps 50 --compile
done
step default_b128 "$PY" benchmarks/bench_train.py --model-only --batch 128 --steps 50
step default_b128_compile "$PY" benchmarks/bench_train.py --model-only --batch 128 --steps 50 --compile
step loader_16_workers "$PY" benchmarks/bench_train.py --workers 0 16

# DDP under NCCL (one process), then a resume: the second run finds last.pt of epoch 2 and trains epoch 3
DDP="$OUT/ddp"
rm -rf "$DDP" && mkdir -p "$DDP"
set_epochs() {  # params.yaml with `epochs` set, for the DDP runs
  "$PY" -c 'import sys; from ruamel.yaml import YAML; y = YAML(); p = y.load(open("params.yaml")); p["epochs"] = int(sys.argv[2]); y.dump(p, open(sys.argv[1], "w"))' \
    "$DDP/params.yaml" "$1"
}
set_epochs 2
ddp() {
  "$BIN/torchrun" --standalone --nproc_per_node=1 stages/train.py --params "$DDP/params.yaml" \
    --dataset dataset/composed --stats dataset/stats.json --split dataset/split.json --models "$DDP/models" \
    --live "$DDP/dvclive" --metrics "$DDP/train.json"
}
step ddp_nccl ddp
set_epochs 3
step ddp_nccl_resume ddp

step sync_debug "$PY" benchmarks/bench_train.py --model-only --batch 64 --steps 50 --sync-debug
say "done: $OUT/summary.txt"
