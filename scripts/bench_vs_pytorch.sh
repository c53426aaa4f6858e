#!/usr/bin/env bash
# fovea against the PyTorch / ONNX Runtime baseline of ../shared/bench, back to back on this
# machine, and the ratio of every figure (above 1: fovea is faster).
#
# usage: scripts/bench_vs_pytorch.sh [--quick] [--threads "1 2"] [--epochs 1] [--out DIR]
#   needs the baseline venv (bash ../shared/bench/setup.sh) or PY=<python with torch>;
#   BASELINE=<dir of conv_torch.py / mnist_torch.py> (default ../shared/bench).
#   --quick: conv layers and inference only (no training epochs).
#   FOVEA_ISA=avx2: fovea's AVX2 kernels, and PyTorch capped to AVX2 as well (an AVX2 table
#   from an AVX-512 machine; ONNX Runtime keeps the CPU's widest).
# Writes DIR/fovea.tsv, DIR/baseline.tsv and DIR/ratios.md (default /tmp/fovea-vs-pytorch).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BASELINE=${BASELINE:-$ROOT/../shared/bench}
PY=${PY:-/tmp/fovea-baseline-venv/bin/python}
THREADS="1 2"; EPOCHS=1; OUT=/tmp/fovea-vs-pytorch; QUICK=0
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) QUICK=1 ;;
        --threads) THREADS="$2"; shift ;;
        --epochs) EPOCHS="$2"; shift ;;
        --out) OUT="$2"; shift ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
[ -x "$PY" ] || { echo "no baseline python at $PY: run bash $BASELINE/setup.sh or set PY" >&2; exit 1; }
mkdir -p "$OUT"
export GLIBC_TUNABLES=glibc.malloc.trim_threshold=1073741824:glibc.malloc.mmap_threshold=1073741824
export MNIST_DIR=${MNIST_DIR:-$ROOT/data/mnist}
# FOVEA_ISA=avx2 on an AVX-512 machine: the baseline capped to AVX2 too, so that both sides run
# the same instruction set (oneDNN, PyTorch's own kernels and MKL honour these; ONNX Runtime
# has no such switch and keeps the CPU's widest).
if [ "${FOVEA_ISA:-}" = avx2 ]; then
    export ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2
fi
cargo build --release --quiet
FOVEA="$ROOT/target/release/fovea"
: > "$OUT/fovea.tsv"; : > "$OUT/baseline.tsv"
{
    # A virtual machine's model name may say only "AMD EPYC": family and model tell the cores
    # apart (family 25: Zen 3 as model 1, Zen 4 as model 17; family 26: Zen 5).
    echo "# cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //') (family $(grep -m1 'cpu family' /proc/cpuinfo | cut -d: -f2 | tr -d ' '), model $(grep -m1 -E '^model\s' /proc/cpuinfo | cut -d: -f2 | tr -d ' '))"
    echo "# isa: $(grep -m1 -o -E 'avx512f' /proc/cpuinfo || grep -m1 -o avx2 /proc/cpuinfo || echo none), FOVEA_ISA=${FOVEA_ISA:-}, baseline capped: ${ONEDNN_MAX_CPU_ISA:-no}"
    echo "# date: $(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
} | tee "$OUT/machine.txt"
# Shape by shape, each side's figures of a shape taken within seconds of the other's: the
# machines drift by 15-20% within a minute, and all of fovea's shapes before all of PyTorch's
# set a ratio against figures from another phase (the baseline repeats its pool lines each
# time; the ratios read the conv lines alone).
for t in $THREADS; do
    echo "== conv layers, $t thread(s)" >&2
    for shape in a b c d e f; do
        "$FOVEA" --threads "$t" bench conv --reps 20 --shapes "$shape" | tee -a "$OUT/fovea.tsv"
        (cd "$BASELINE" && "$PY" conv_torch.py --threads "$t" --shapes "$shape") | tee -a "$OUT/baseline.tsv"
    done
done
T2=$(echo $THREADS | awk '{print $NF}')
(cd "$BASELINE" && "$PY" conv_ort.py --threads "$T2") | tee -a "$OUT/baseline.tsv" || true
for model in mnist-cnn lenet5; do
    net=$([ "$model" = mnist-cnn ] && echo deep || echo lenet5)
    echo "== $model, $T2 thread(s)" >&2
    "$FOVEA" --threads "$T2" bench infer --model "$model" | tee -a "$OUT/fovea.tsv"
    if [ "$QUICK" = 0 ]; then
        "$FOVEA" --threads "$T2" bench train --model "$model" --epochs "$EPOCHS" --data "$MNIST_DIR" | tee -a "$OUT/fovea.tsv"
        (cd "$BASELINE" && "$PY" mnist_torch.py --net "$net" --threads "$T2" --epochs "$EPOCHS" --infer --onnx) | tee -a "$OUT/baseline.tsv"
    else
        (cd "$BASELINE" && "$PY" mnist_torch.py --net "$net" --threads "$T2" --epochs 0 --infer --onnx) | tee -a "$OUT/baseline.tsv"
    fi
done
python3 "$ROOT/scripts/bench_ratios.py" "$OUT/fovea.tsv" "$OUT/baseline.tsv" "$OUT/machine.txt" | tee "$OUT/ratios.md"
