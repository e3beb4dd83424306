#!/usr/bin/env bash
# The GPU check in one call that fits the GPU test machine (10 minutes per command, 15 in
# all, only the working tree travels): GPU tests (the jit step table included), the MNIST
# examples, the jit steps as CUDA graphs against PyTorch CUDA, the GPT example, two MPI
# ranks sharing the GPU, the profiler and anomaly detection on the device. Ends with ONE
# summary table; exits non-zero when any stage fails.
#
#   bash tools/gpu_check.sh            (make gpu-check)   all stages, at most 8 minutes
#   bash tools/gpu_check.sh --quick    (make gpu-check ARGS=--quick)   at most 4 minutes
#   bash tools/gpu_check.sh --fill-data [FOLDER...]       fill gpu_data/ (see below)
#
# Data: MNIST and Tiny Shakespeare come from gpu_data/ inside the working tree (git-ignored,
# about 13 MiB, at most 60 MiB; carry it along to the GPU machine). Fill it once with
# `make gpu-data` (= --fill-data), which copies the files from DEZERO_DATA_DIR,
# ../shared/data, /work/shared/data or ~/.dezero. Without it the stages that need the data
# fail, saying how to fill it.
#
# Time plan (seconds; each stage has its own timeout, and all of them share one deadline,
# TOTAL, so the call ends in time; a stage that the deadline leaves no time for fails):
#   stage                 full  quick
#   environment             20     20
#   GPU tests              150     80   (quick: jit, training, metrics, serialization, conv)
#   jit tests on the GPU    60     45   (the jit step table: replay == eager within 1e-6)
#   MNIST MLP --gpu         45     30   (quick: 2,000 images)
#   MNIST CNN --gpu         50      -
#   jit vs PyTorch CUDA     50     25   (benchmarks/bench_gpu.py; quick: --quick)
#   GPT --gpu               40      -
#   2 MPI ranks, 1 GPU      45      -
#   profiler + anomaly      20     20
#   TOTAL (deadline)       460    220
#
# Without a usable GPU the GPU stages are skipped, saying so in the table: --quick then
# exits 0 (what can be checked on a CPU was), the full check exits 2 (a GPU check that ran
# on no GPU must not look green).
#
# Environment: PYTHON (default: .venv/bin/python if present, else python3; it needs CuPy,
# and torch for the PyTorch baseline), OUT (logs, default ./gpu_out), GPU_DATA (default
# ./gpu_data), TOTAL (seconds, overrides the deadline).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
QUICK=0
FILL=0
FILL_FROM=()
for arg in "$@"; do
    case "$arg" in
        --quick) QUICK=1 ;;
        --fill-data) FILL=1 ;;
        -h|--help) sed -n '2,40p' "$0"; exit 0 ;;
        *) if [ "$FILL" = 1 ]; then FILL_FROM+=("$arg"); else
               echo "gpu-check: unknown argument $arg (try --help)" >&2; exit 2; fi ;;
    esac
done
if [ -z "${PYTHON:-}" ]; then
    if [ -x "$ROOT/.venv/bin/python" ]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python3; fi
fi
PY=$PYTHON
DATA=${GPU_DATA:-$ROOT/gpu_data}
OUT=${OUT:-$ROOT/gpu_out}
MAX_DATA_MIB=60

# --- gpu_data/: fill it (once, on a machine that has the files) ---------------------------
if [ "$FILL" = 1 ]; then
    [ ${#FILL_FROM[@]} -gt 0 ] || FILL_FROM=("${DEZERO_DATA_DIR:-}" "$ROOT/../shared/data"
                                             "/work/shared/data" "$HOME/.dezero")
    mkdir -p "$DATA/mnist" "$DATA/tinyshakespeare"
    for f in train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz \
             t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz; do
        for src in "${FILL_FROM[@]}"; do
            [ -n "$src" ] || continue
            for cand in "$src/$f" "$src/mnist/$f"; do
                if [ -f "$cand" ] && [ ! -f "$DATA/mnist/$f" ]; then cp "$cand" "$DATA/mnist/$f"; fi
            done
        done
    done
    for src in "${FILL_FROM[@]}"; do
        [ -n "$src" ] || continue
        for cand in "$src/tinyshakespeare/input.txt" "$src/input.txt" "$src/tinyshakespeare.txt"; do
            if [ -f "$cand" ] && [ ! -f "$DATA/tinyshakespeare/input.txt" ]; then
                cp "$cand" "$DATA/tinyshakespeare/input.txt"
            fi
        done
    done
    size=$(du -sm "$DATA" | cut -f1)
    echo "gpu_data: $(find "$DATA" -type f | wc -l) files, ${size} MiB in $DATA"
    ls "$DATA/mnist" "$DATA/tinyshakespeare"
    [ "$size" -le "$MAX_DATA_MIB" ] || { echo "gpu_data is over ${MAX_DATA_MIB} MiB" >&2; exit 1; }
    [ "$(ls "$DATA/mnist" | wc -l)" = 4 ] && [ -f "$DATA/tinyshakespeare/input.txt" ] || {
        echo "gpu_data: some files were not found; pass the folders that hold them" >&2; exit 1; }
    exit 0
fi

if [ "$QUICK" = 1 ]; then TOTAL=${TOTAL:-220}; else TOTAL=${TOTAL:-460}; fi
mkdir -p "$OUT"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 MPLBACKEND=Agg
DEADLINE=$((SECONDS + TOTAL))

names=(); results=(); times=(); notes=()
failed=0
skipped_gpu=0

record() {  # name result seconds note
    names+=("$1"); results+=("$2"); times+=("$3"); notes+=("$4")
    printf '   -> %s (%s s) %s\n' "$2" "$3" "$4"
    [ "$2" = FAIL ] && failed=1
    return 0
}

# stage NAME BUDGET NEEDS(gpu|data|mnist|text|mpi, comma list or -) NOTE_CMD -- COMMAND...
# Runs COMMAND with a timeout of min(BUDGET, time left), its output in $OUT/NAME.log;
# NOTE_CMD (a shell snippet reading $log) gives the summary's note.
stage() {
    local name=$1 budget=$2 needs=$3 note_cmd=$4; shift 5
    local slug=${name// /_}; slug=${slug//[^A-Za-z0-9_+-]/}
    log="$OUT/$slug.log"
    echo "== $name"
    local need
    for need in ${needs//,/ }; do
        case "$need" in
            gpu) if [ "$GPU" != ok ]; then skipped_gpu=1
                     record "$name" SKIP 0 "no GPU ($GPU)"; return; fi ;;
            mnist) if [ ! -f "$DATA/mnist/t10k-labels-idx1-ubyte.gz" ]; then
                       record "$name" FAIL 0 "no MNIST in $DATA: run make gpu-data"; return; fi ;;
            text) if [ ! -f "$DATA/tinyshakespeare/input.txt" ]; then
                      record "$name" FAIL 0 "no Tiny Shakespeare in $DATA: run make gpu-data"
                      return; fi ;;
        esac
    done
    local left=$((DEADLINE - SECONDS))
    local limit=$(( budget < left ? budget : left ))
    if [ "$limit" -lt 5 ]; then
        record "$name" FAIL 0 "no time left of the ${TOTAL} s"; return
    fi
    local start=$SECONDS
    timeout --kill-after=5 "$limit" "$@" >"$log" 2>&1
    local rc=$?
    local took=$((SECONDS - start))
    tail -n 6 "$log" | sed 's/^/   | /'
    local note
    note=$(eval "$note_cmd" 2>/dev/null | tail -n 1 | cut -c1-90)
    if [ $rc = 124 ] || [ $rc = 137 ]; then
        record "$name" FAIL "$took" "timed out after ${limit} s; $note"
    elif [ $rc != 0 ]; then
        record "$name" FAIL "$took" "exit $rc; $note"
    else
        record "$name" PASS "$took" "$note"
    fi
}

# --- the stages ------------------------------------------------------------------------
GPU=$($PY -c "from dezero import cuda; print('ok' if cuda.gpu_enable else 'CuPy is missing or sees no CUDA device')" 2>&1 | tail -1)
[ -n "$GPU" ] || GPU="python failed"

stage "environment" 20 - 'grep -E "^numpy" "$log"' -- \
    "$PY" -c "
import numpy, dezero
from dezero import cuda
print('numpy', numpy.__version__, '| cupy', getattr(cuda.cupy, '__version__', None),
      '| gpu_enable', cuda.gpu_enable, '| dezero', dezero.__version__)
if cuda.gpu_enable:
    props = cuda.cupy.cuda.runtime.getDeviceProperties(0)
    print('device', props['name'].decode(), props['totalGlobalMem'] // 2**30, 'GiB')
"

if [ -d "$DATA" ]; then
    size=$(du -sm "$DATA" | cut -f1)
    if [ "$size" -le "$MAX_DATA_MIB" ]; then
        record "gpu_data" PASS 0 "$(find "$DATA" -type f | wc -l) files, ${size} MiB in $DATA"
    else
        record "gpu_data" FAIL 0 "$DATA holds ${size} MiB, over the ${MAX_DATA_MIB} MiB it may carry"
    fi
else
    record "gpu_data" SKIP 0 "no $DATA: the GPU stages that need data fail; run make gpu-data"
fi

XDIST=$($PY -c "import xdist" 2>/dev/null && echo "-n ${GPU_TEST_WORKERS:-8}")
if [ "$QUICK" = 1 ]; then
    GPU_TESTS=(tests/test_trainer.py tests/test_metrics.py tests/test_serialization.py
               tests/test_functions_conv.py tests/test_optimizers.py)
    stage "GPU tests (a selection)" 80 gpu 'grep -E "(passed|failed)" "$log"' -- \
        "$PY" -m pytest -q -p no:cacheprovider -m gpu "${GPU_TESTS[@]}"
else
    stage "GPU tests" 150 gpu 'grep -E "(passed|failed)" "$log"' -- \
        "$PY" -m pytest -q -p no:cacheprovider $XDIST -m gpu tests --ignore-glob='tests/test_jit*'
fi
stage "jit tests on the GPU" $([ "$QUICK" = 1 ] && echo 45 || echo 60) gpu \
    'grep -E "(passed|failed)" "$log"' -- \
    "$PY" -m pytest -q -p no:cacheprovider -m gpu $(ls tests/test_jit*.py)

MNIST_LIMIT=$([ "$QUICK" = 1 ] && echo "--limit 2000")
stage "MNIST MLP --gpu" $([ "$QUICK" = 1 ] && echo 30 || echo 45) gpu,mnist \
    'grep -E "final test accuracy" "$log"' -- \
    env DEZERO_DATA_DIR="$DATA/mnist" "$PY" examples/mnist.py --gpu --no-progress --epochs 1 \
        $MNIST_LIMIT --out "$OUT/mnist_mlp"
if [ "$QUICK" = 0 ]; then
    stage "MNIST CNN --gpu" 50 gpu,mnist 'grep -iE "test" "$log"' -- \
        env DEZERO_DATA_DIR="$DATA/mnist" "$PY" examples/mnist_cnn.py --gpu --no-progress \
            --epochs 1 --out "$OUT/mnist_cnn"
fi
stage "jit vs PyTorch CUDA" $([ "$QUICK" = 1 ] && echo 25 || echo 50) gpu \
    'grep -E "^# dezero.jit" "$log"' -- \
    "$PY" benchmarks/bench_gpu.py $([ "$QUICK" = 1 ] && echo --quick)
if [ "$QUICK" = 0 ]; then
    stage "GPT --gpu" 40 gpu,text 'grep -E "trained in" "$log"' -- \
        env DEZERO_DATA_DIR="$DATA/tinyshakespeare" "$PY" examples/gpt.py --gpu --no-progress \
            --iters 200 --eval-interval 100 --eval-iters 5 --final-eval-iters 20 \
            --sample-length 100 --out "$OUT/gpt"
    MPIEXEC=$($PY -c "from dezero.distributed import mpiexec_command as m; print(' '.join(m() or []))" 2>/dev/null)
    if [ -n "$MPIEXEC" ] && $PY -c "import mpi4py" 2>/dev/null; then
        stage "2 MPI ranks, 1 GPU" 45 gpu,mnist 'grep -E "final test" "$log"' -- \
            env DEZERO_DATA_DIR="$DATA/mnist" $MPIEXEC -n 2 "$PY" examples/mnist.py \
                --distributed --gpu --no-progress --epochs 1 --limit 6000 --out "$OUT/mnist_dist"
    else
        record "2 MPI ranks, 1 GPU" FAIL 0 "no mpi4py or mpiexec for $PY (pip install \"dezero-next[mpi]\")"
    fi
fi
stage "profiler + anomaly" 20 gpu 'grep -E "^total" "$log"' -- "$PY" -c "
import numpy as np, dezero, dezero.functions as F
from dezero import cuda, profiler
from dezero.models import MLP
from dezero.optimizers import Adam
xp = cuda.cupy
model = MLP((1000, 1000, 10)); opt = Adam().setup(model)
x = xp.asarray(np.random.default_rng(0).standard_normal((1000, 784), dtype=np.float32))
t = xp.asarray(np.arange(1000) % 10)
model(x); model.to_gpu()
def step():
    loss = F.softmax_cross_entropy(model(x), t); model.cleargrads(); loss.backward(); opt.update()
step()
with dezero.detect_anomaly():
    step()
with profiler.profile() as prof:
    for _ in range(5):
        step()
prof.export_chrome_trace('/dev/null')
print(prof.table(sort_by='total', limit=8))
print('total', round(sum(r['total_ns'] for r in prof.summary()) / 1e6, 1), 'ms in',
      len(prof.summary()), 'rows')
"

# --- one summary table -----------------------------------------------------------------
echo
echo "== summary ($([ "$QUICK" = 1 ] && echo quick || echo full) check, ${SECONDS} s of ${TOTAL} s; logs in $OUT)"
printf '| %-24s | %-6s | %5s | %s\n' stage result s note
printf '|%s|%s|%s|%s\n' "--------------------------" "--------" "-------" "------"
for i in "${!names[@]}"; do
    printf '| %-24s | %-6s | %5s | %s\n' "${names[$i]}" "${results[$i]}" "${times[$i]}" "${notes[$i]}"
done
if [ "$failed" = 1 ]; then
    echo "gpu-check: FAILED (see the table above)" >&2
    exit 1
fi
if [ "$skipped_gpu" = 1 ]; then
    if [ "$QUICK" = 1 ]; then
        echo "gpu-check --quick: no usable GPU ($GPU): the GPU stages were skipped; the rest passed"
        exit 0
    fi
    echo "gpu-check: FAILED: no usable GPU for $PY ($GPU), so the GPU stages were skipped and" \
         'nothing on a GPU was checked. Run it on a machine with a CUDA GPU and CuPy' \
         '(pip install -e ".[gpu]"), or set PYTHON to a Python that has them.' >&2
    exit 2
fi
echo "gpu-check: all stages passed"
