#!/usr/bin/env bash
# One GPU check, about 8 minutes on one H100/H200, everything written under OUTDIR:
#
#     benchmarks/gpu_check.sh OUTDIR
#
#   env.txt            nvidia-smi, python, torch, CUDA as torch sees them
#   pytest_cuda.txt    the CUDA tests (pytest -m cuda)
#   bench_fp32.txt/.json, bench_bf16.txt/.json
#                      benchmarks/train_step.py at the paper config (128, resnet_6blocks), bf16 off and on
#   bench_compile.txt  the compiled + captured step (compilation takes a while; its own time limit)
#   train_*.txt        short paper-config training runs (300 iterations per run) on random images made
#                      here: eager, --graphs (fp32, bf16), packed 5 and 25 seeds; run.json of each (train_seconds)
#   summary.txt        each step's exit status and seconds (no step starts after GPU_CHECK_BUDGET=450 s)
#
# Installs nothing beyond `make install`: it uses .venv if present, else runs `make install` (needs the package
# index), else a system python that already has torch, tabulate and pytest, with this checkout on PYTHONPATH.
# GPU_CHECK_PYTHON=PATH uses that interpreter instead. GPU_CHECK_DEVICE=cpu runs the same steps tiny on the CPU
# (smoke sizes, a few iterations): the dry run that tests this script where no GPU is lent.
set -u
OUT=${1:?usage: benchmarks/gpu_check.sh OUTDIR}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DEVICE=${GPU_CHECK_DEVICE:-cuda}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
cd "$ROOT"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
: > "$OUT/summary.txt"

has_deps() { "$1" -c "import torch, tabulate, pytest, repro" >/dev/null 2>&1; }
PY=""
if [ -n "${GPU_CHECK_PYTHON:-}" ]; then PY=$GPU_CHECK_PYTHON  # an environment you already have
elif [ -x .venv/bin/python ] && has_deps .venv/bin/python; then PY=.venv/bin/python
elif make install >"$OUT/install.txt" 2>&1 && has_deps .venv/bin/python; then PY=.venv/bin/python
else
    for candidate in python3 python; do
        if command -v "$candidate" >/dev/null && has_deps "$candidate"; then PY=$candidate; break; fi
    done
fi
if [ -z "$PY" ]; then
    echo "no python with torch, tabulate and pytest: .venv is missing, make install failed (see $OUT/install.txt)" \
         "and no system python has them" | tee -a "$OUT/summary.txt"
    exit 1
fi
echo "python: $PY" | tee -a "$OUT/summary.txt"

failed=0
BUDGET=${GPU_CHECK_BUDGET:-450}  # seconds: no step starts after this, none runs far past it (8 minutes in all)
step() {  # step NAME SECONDS COMMAND...: runs COMMAND with a time limit, output to OUT/NAME.txt
    local name=$1 limit=$2; shift 2
    local start=$SECONDS
    if [ $SECONDS -ge $BUDGET ]; then
        echo "$name: skipped (the ${BUDGET}s budget is spent)" | tee -a "$OUT/summary.txt"; failed=1; return
    fi
    [ $((SECONDS + limit)) -le $BUDGET ] || limit=$((BUDGET - SECONDS + 30))
    echo "== $name (limit ${limit}s)"
    timeout --kill-after=10 "$limit" "$@" >"$OUT/$name.txt" 2>&1
    local rc=$?
    [ $rc -eq 0 ] || failed=1
    echo "$name: exit $rc in $((SECONDS - start)) s$([ $rc -eq 124 ] && echo ' (time limit)')" | tee -a "$OUT/summary.txt"
    tail -n 25 "$OUT/$name.txt"
}

step env 30 bash -c "nvidia-smi || true; $PY -c 'import torch, sys; print(sys.version); print(torch.__version__, torch.version.cuda, torch.cuda.is_available() and torch.cuda.get_device_name())'"

if [ "$DEVICE" = cuda ]; then
    SIZE=paper; ITERS=40; ROUNDS=3; TRAIN_ITERS=300; CONFIG=cityscapes/cyclegan; IMG=256; N=40
else  # the dry run: same steps, tiny
    SIZE=smoke; ITERS=2; ROUNDS=1; TRAIN_ITERS=4; CONFIG=smoke/cyclegan; IMG=64; N=6
fi
CUDA_CASES=port-old,paper-old,paper,paper-graphs,packed5,packed25
CPU_CASES=port-old,paper-old,paper
CASES=$([ "$DEVICE" = cuda ] && echo $CUDA_CASES || echo $CPU_CASES)

step pytest_cuda 150 "$PY" -m pytest -q -m cuda -p no:cacheprovider tests
step bench_fp32 110 "$PY" benchmarks/train_step.py --device "$DEVICE" --sizes $SIZE --cases $CASES \
    --iters $ITERS --rounds $ROUNDS --json "$OUT/bench_fp32.json"
step bench_bf16 110 "$PY" benchmarks/train_step.py --device "$DEVICE" --sizes $SIZE --cases $CASES --amp \
    --iters $ITERS --rounds $ROUNDS --json "$OUT/bench_bf16.json"
if [ "$DEVICE" = cuda ]; then
    step bench_compile 120 "$PY" benchmarks/train_step.py --device cuda --sizes paper --amp \
        --cases paper,paper-graphs,paper-graphs-compile --iters $ITERS --rounds 2 --json "$OUT/bench_compile.json"
fi

# random images in the prepared Cityscapes layout (trainA/testA photos, trainB/testB label maps)
DATA="$OUT/random-data"
step data 60 "$PY" - "$DATA" $IMG $N <<'EOF'
import sys
from pathlib import Path
import numpy as np
from PIL import Image
root, size, n = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(0)
for folder in ("trainA", "trainB", "testA", "testB"):
    (root / folder).mkdir(parents=True, exist_ok=True)
    for i in range(n if folder.startswith("train") else 4):
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(root / folder / f"f_{i:04d}.png")
print(f"{root}: {n} random {size}x{size} images per training side")
EOF

train() {  # train NAME EXTRA_FLAGS...: one short run of the config, its run.json kept
    local name=$1; shift
    step "train_$name" 100 "$PY" -m repro.cli train $CONFIG --data "$DATA" --out "$OUT/runs/$name" --device "$DEVICE" \
        --epochs 1 --iters-per-epoch $TRAIN_ITERS --quiet "$@"
    [ -f "$OUT/runs/$name/run.json" ] && cp "$OUT/runs/$name/run.json" "$OUT/train_$name.run.json"
}
train eager
[ "$DEVICE" = cuda ] && train graphs --graphs
[ "$DEVICE" = cuda ] && train graphs_bf16 --graphs --amp
if "$PY" -m repro.cli train --help | grep -q -- "--seeds"; then  # K seeds as one pack, OUT/runs/NAME/seed-S
    train packed5 --seeds 0 1 2 3 4
    [ "$DEVICE" = cuda ] && train packed25 --seeds $(seq 0 24)
    for f in "$OUT"/runs/packed*/seed-0/run.json; do [ -f "$f" ] && cp "$f" "$OUT/train_$(basename "$(dirname "$(dirname "$f")")").seed-0.run.json"; done
else
    echo "packed training: this repro train has no --seeds yet (not run)" | tee -a "$OUT/summary.txt"
fi

echo "== done: $OUT (summary.txt)"; cat "$OUT/summary.txt"
exit $failed
