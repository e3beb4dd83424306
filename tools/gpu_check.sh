#!/usr/bin/env bash
# One call on a machine with a CUDA GPU: the GPU test selection, the MNIST examples on the
# GPU, and the GPU benchmarks against PyTorch CUDA. Prints a short summary table last.
#
#   bash tools/gpu_check.sh            (or: make gpu-check)
#
# Environment: PYTHON (default python3, which must have CuPy and, for the baseline, torch),
# OUT (folder for logs and plots, default ./gpu_out), DEZERO_DATA_DIR (MNIST files),
# EPOCHS_MLP / EPOCHS_CNN (default 3 / 2).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
OUT=${OUT:-$PWD/gpu_out}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 MPLBACKEND=Agg

summary=()
note() { summary+=("$1"); }

# Without a usable GPU every check below would be skipped and the run would look green: stop.
gpu=$($PY -c "from dezero import cuda; print('ok' if cuda.gpu_enable else 'CuPy is missing or sees no CUDA device')" 2>&1 | tail -1)
if [ "$gpu" != ok ]; then
    echo "gpu-check: FAILED: no usable GPU for $PY ($gpu), so nothing was checked." \
         'Run it on a machine with a CUDA GPU and CuPy (pip install -e ".[gpu]"),' \
         "or set PYTHON to a Python that has them." >&2
    exit 2
fi

echo "== device"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
$PY - <<'PYEOF'
import numpy, dezero
from dezero import cuda
print("numpy", numpy.__version__, "| cupy", getattr(cuda.cupy, "__version__", None),
      "| gpu_enable", cuda.gpu_enable)
PYEOF

echo "== MNIST MLP example on the GPU"
$PY examples/mnist.py --gpu --no-progress --epochs "${EPOCHS_MLP:-3}" --out "$OUT/mnist_mlp" 2>&1 \
    | tee "$OUT/mnist_mlp.log" | grep -v '%|' | tail -8
note "mnist mlp: $(grep -iE 'test' "$OUT/mnist_mlp.log" | tail -1)"

echo "== MNIST CNN example on the GPU"
[ -f examples/mnist_cnn.py ] && $PY examples/mnist_cnn.py --gpu --no-progress --epochs "${EPOCHS_CNN:-2}" --out "$OUT/mnist_cnn" 2>&1 \
    | tee "$OUT/mnist_cnn.log" | grep -v '%|' | tail -8
note "mnist cnn: $(grep -iE 'test' "$OUT/mnist_cnn.log" | tail -1)"

echo "== MNIST MLP on 2 MPI ranks sharing the GPU (staged through host memory), 1 epoch"
MPIEXEC=$($PY -c "from dezero.distributed import mpiexec_command as m; print(' '.join(m() or []))" 2>/dev/null)
if [ -n "$MPIEXEC" ] && $PY -c "import mpi4py" 2>/dev/null; then
    timeout "${DIST_TIMEOUT:-300}" $MPIEXEC -n 2 $PY examples/mnist.py --distributed --gpu --no-progress \
        --epochs 1 --out "$OUT/mnist_dist" 2>&1 | tee "$OUT/mnist_dist.log" | grep -v '%|' | tail -8
    note "mnist 2 ranks, 1 GPU: $(grep -oE "gpu='[^']*'" "$OUT/mnist_dist.log" | head -1) $(grep -iE 'final test' "$OUT/mnist_dist.log" | tail -1)"
else
    note "mnist 2 ranks, 1 GPU: skipped (no mpi4py or mpiexec for $PY; pip install \"dezero[mpi]\")"
fi

echo "== GPT on Tiny Shakespeare on the GPU (baby config, ${GPT_ITERS:-500} iterations)"
SHAKESPEARE=${SHAKESPEARE_DIR:-$PWD/../shared/data/tinyshakespeare}
[ -f "$SHAKESPEARE/input.txt" ] || SHAKESPEARE=${DEZERO_DATA_DIR:-$HOME/.dezero}
DEZERO_DATA_DIR="$SHAKESPEARE" $PY examples/gpt.py --gpu --no-progress --iters "${GPT_ITERS:-500}" \
    --eval-interval 250 --final-eval-iters 50 --sample-length 200 --out "$OUT/gpt" 2>&1 \
    | tee "$OUT/gpt.log" | tail -8
note "gpt: $(grep -E 'trained in' "$OUT/gpt.log" | tail -1)"

echo "== GPU benchmarks (dezero vs PyTorch CUDA)"
$PY benchmarks/bench_gpu.py 2>&1 | tee "$OUT/bench_gpu.log"

echo "== GPU tests"
# pytest-xdist spreads the selection over the CPU cores when it is installed
XDIST=$($PY -c "import xdist" 2>/dev/null && echo "-n ${GPU_TEST_WORKERS:-8}")
timeout "${GPU_TEST_TIMEOUT:-900}" $PY -m pytest -q -p no:cacheprovider $XDIST -m gpu tests 2>&1 \
    | tee "$OUT/gpu_tests.log" | tail -25
note "tests: $(grep -E '(passed|failed)' "$OUT/gpu_tests.log" | tail -1)"

echo "== profiler and detect_anomaly on the GPU (a few MLP steps)"
$PY - <<'PYEOF' 2>&1 | tee "$OUT/profiler_gpu.log" | tail -14
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
prof.export_chrome_trace("/dev/null")
print(prof.table(sort_by="total", limit=10))
PYEOF

echo "== dezero.jit on the GPU (CUDA graph capture and replay)"
timeout 300 $PY -m pytest -q -p no:cacheprovider -m gpu tests/test_jit.py 2>&1 \
    | tee "$OUT/gpu_jit_tests.log" | tail -5
note "jit tests: $(grep -E '(passed|failed)' "$OUT/gpu_jit_tests.log" | tail -1)"

echo
echo "== summary"
printf '%s\n' "${summary[@]}"
grep -E '^\|' "$OUT/bench_gpu.log" || true
grep -E '^# dezero.jit' "$OUT/bench_gpu.log" || true
