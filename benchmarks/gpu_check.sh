#!/usr/bin/env bash
# The GPU check: what one short loan of a GPU machine should tell us, in under 6 minutes, so a rerun fits in 15.
#
#     benchmarks/gpu_wheels.sh                 # here, once (needs the package index): .whl/, see that script
#     benchmarks/gpu_check.sh OUTDIR           # there, with the image's own python3 (torch is never installed)
#
# OUTDIR receives three files (what comes back from such a machine is a few files, not folders of runs):
#   summary.md      one screen: it/s of one paper-config run eager, captured (--graphs), captured bf16; packed 5
#                   and 25 runs (aggregate and per run); peak memory per run; the sync-debug result; the CUDA
#                   tests; the compiled step; each step's exit status and seconds
#   summary.json    every figure, per case (benchmarks/gpu_probe.py's JSON), the environment, the steps
#   logs.tar.gz     every step's log, the probes' JSON, each run's run.json and losses.jsonl
# Run folders, random images and logs live in a scratch folder outside OUTDIR (GPU_CHECK_SCRATCH, default a new
# /tmp/gpu-check.*). Each step has a time limit, keeps going after a failure and is recorded; the compiled step
# runs last, with what is left of GPU_CHECK_BUDGET (default 330 s) up to GPU_CHECK_COMPILE_LIMIT (default 240 s:
# a cold compile of this step took 238 s on a CPU). Exit status 0 only if every step passed.
#
# Python: GPU_CHECK_PYTHON (default python3) with this checkout first on PYTHONPATH, and .whl/*.whl (if any)
# installed with pip --no-index --no-deps --target into the scratch folder. The CUDA tests run from
# tests/test_cuda.py alone, so a package the image lacks cannot stop their collection.
# GPU_CHECK_DEVICE=cpu: the dry run (tests/test_gpu_check.py): the same steps on the CPU at tiny sizes, the
# captured cases run uncaptured there (no CUDA graphs on a CPU) and no sync-debug (a CUDA feature).
set -u
OUT=${1:?usage: benchmarks/gpu_check.sh OUTDIR}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DEVICE=${GPU_CHECK_DEVICE:-cuda}
PY=${GPU_CHECK_PYTHON:-python3}
BUDGET=${GPU_CHECK_BUDGET:-330}
COMPILE_LIMIT=${GPU_CHECK_COMPILE_LIMIT:-240}
export PYTHONUNBUFFERED=1  # a step killed at its limit still leaves its log
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd)
SCRATCH=${GPU_CHECK_SCRATCH:-$(mktemp -d /tmp/gpu-check.XXXXXX)}
mkdir -p "$SCRATCH/logs" "$SCRATCH/results" && SCRATCH=$(cd "$SCRATCH" && pwd)
case "$SCRATCH/" in "$OUT"/*) echo "GPU_CHECK_SCRATCH must be outside OUTDIR"; exit 2;; esac
cd "$ROOT"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
STEPS=$SCRATCH/results/steps.tsv
: > "$STEPS"
failed=0

step() {  # step NAME LIMIT COMMAND...: COMMAND under a time limit, output to logs/NAME.log, recorded in steps.tsv
    local name=$1 limit=$2; shift 2
    local left=$((BUDGET - SECONDS))
    if [ "$left" -lt 15 ]; then
        printf '%s\tskipped\t0\t0\n' "$name" >> "$STEPS"; echo "== $name: skipped (budget spent)"; failed=1; return
    fi
    [ "$limit" -le "$((left - 5))" ] || limit=$((left - 5))
    echo "== $name (limit ${limit}s)"
    local start=$SECONDS
    timeout --kill-after=5 "$limit" "$@" > "$SCRATCH/logs/$name.log" 2>&1
    local rc=$?
    [ $rc -eq 0 ] || failed=1
    printf '%s\t%s\t%s\t%s\n' "$name" "$rc" "$((SECONDS - start))" "$limit" >> "$STEPS"
    tail -n 4 "$SCRATCH/logs/$name.log"
    echo "== $name: exit $rc in $((SECONDS - start)) s$([ $rc -eq 124 ] && echo ' (time limit)')"
}

if ls .whl/*.whl >/dev/null 2>&1; then
    step wheels 60 "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$SCRATCH/site" .whl/*.whl
    export PYTHONPATH="$PYTHONPATH:$SCRATCH/site"
else
    printf 'wheels\tnone\t0\t0\n' >> "$STEPS"; echo "== wheels: no .whl/ (benchmarks/gpu_wheels.sh makes it)"
fi

step env 30 "$PY" - "$SCRATCH/results/env.json" <<'EOF'
import importlib.util, json, platform, shutil, subprocess, sys
import torch
def missing(module):
    try:
        return importlib.util.find_spec(module) is None
    except ImportError:
        return True
env = {"python": sys.version.split()[0], "executable": sys.executable, "platform": platform.platform(),
       "torch": torch.__version__, "torch_cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available(),
       "device_name": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
       "missing_packages": [m for m in ("torchvision", "numpy", "PIL", "tqdm", "tabulate", "jinja2", "scipy",
                                        "matplotlib", "skimage", "requests", "cityscapesscripts", "pytorch_fid",
                                        "submitit", "cleanfid", "pandas", "pytest") if missing(m)]}
if shutil.which("nvidia-smi"):
    env["nvidia_smi"] = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total",
                                        "--format=csv,noheader"], capture_output=True, text=True).stdout.strip()
json.dump(env, open(sys.argv[1], "w"), indent=1)
print(json.dumps(env, indent=1))
EOF

step cuda_tests 120 "$PY" -m pytest -q -rs -p no:cacheprovider -k "not compiled" tests/test_cuda.py

if [ "$DEVICE" = cuda ]; then
    IMG=256; N=40; CONFIG=(--config cityscapes/cyclegan)
    CASES=("eager||100|10|5" "graphs|--graphs|200|10|5" "graphs_bf16|--graphs --amp|200|10|5"
           "packed5|--seeds 5|30|5|3" "packed25|--seeds 25|10|3|2")
    COMPILED=(--graphs --amp --compile); COMPILED_ITERS=100; COMPILED_WARM=10
else  # the dry run: tiny sizes, the captured cases uncaptured
    IMG=32; N=6; CONFIG=(--config smoke/cyclegan --set load_size=20 --set crop_size=16 --set ngf=4 --set ndf=4)
    CASES=("eager||2|1|0" "graphs||2|1|0" "graphs_bf16||2|1|0" "packed5|--seeds 2|2|1|0" "packed25|--seeds 3|2|1|0")
    COMPILED=(--compile); COMPILED_ITERS=2; COMPILED_WARM=1
fi

DATA=$SCRATCH/data  # random images in the prepared layout (trainA/testA photos, trainB/testB label maps)
step data 60 "$PY" - "$DATA" $IMG $N <<'EOF'
import sys
from pathlib import Path
import numpy as np
from PIL import Image
root, size, n = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(0)
for folder in ("trainA", "trainB", "testA", "testB"):
    (root / folder).mkdir(parents=True, exist_ok=True)
    for i in range(n if folder.startswith("train") else 2):
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(root / folder / f"f_{i:04d}.png")
print(f"{root}: {n} random {size}x{size} images per training side")
EOF

probe() {  # probe NAME LIMIT ITERS WARM SYNC FLAGS...
    local name=$1 limit=$2 iters=$3 warm=$4 sync=$5; shift 5
    step "$name" "$limit" "$PY" benchmarks/gpu_probe.py "$name" --data "$DATA" --work "$SCRATCH/runs" \
        --json "$SCRATCH/results/$name.json" --device "$DEVICE" "${CONFIG[@]}" \
        --iters "$iters" --warm "$warm" --sync-iters "$sync" "$@"
}
for case in "${CASES[@]}"; do
    IFS='|' read -r name flags iters warm sync <<< "$case"
    # shellcheck disable=SC2086  # flags split into words on purpose
    probe "$name" 75 "$iters" "$warm" "$sync" $flags
done

# last: the compiled (and, on CUDA, captured bf16) step, with what is left of the budget
left=$((BUDGET - SECONDS - 5))
probe compiled "$((left < COMPILE_LIMIT ? left : COMPILE_LIMIT))" "$COMPILED_ITERS" "$COMPILED_WARM" 0 "${COMPILED[@]}"
"$PY" benchmarks/gpu_summary.py "$SCRATCH" "$OUT" || failed=1
(cd "$SCRATCH" && find logs results runs -name '*.log' -o -name '*.json' -o -name '*.tsv' -o -name 'losses.jsonl' \
    | tar czf "$OUT/logs.tar.gz" -T -)
echo "== done in ${SECONDS}s: $OUT (summary.md, summary.json, logs.tar.gz); scratch $SCRATCH"
cat "$OUT/summary.md" 2>/dev/null
exit $failed
