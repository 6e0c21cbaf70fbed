#!/bin/bash
# Device script for kernels/gemm_small.cu (small batches, 2 .. 127 tokens):
# builds for sm_90a, prints gemm_small's register / spill report, benches
# the small batches hot with gemm_small forced (BONSAI_CUDA_GEMM_SMALL=1),
# by the default routing (label rule),
# without it (BONSAI_CUDA_GEMM_SMALL=0: gemv.cu /
# gemm.cu as before), with main's binary if MAIN_BONSAI names one (label
# v1: its gemm_small forced; skipped if it does not run here), with each
# forced k-slice count and each forced n8-tile count (BONSAI_CUDA_GEMM_SMALL_NT,
# NT_LIST at NS_NT), in the same run, and prints the table for
# bench/NOTES.md; then runs test_cuda (BONSAI_TEST_QUICK=1 unless FULL=1;
# TEST=0 skips it) and, with MEMCHECK=1, test_cuda (BONSAI_TEST_QUICK=1)
# under compute-sanitizer memcheck. Logs under $OUT.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$(pwd)/gemm-small-out}
BUILD=${BUILD:-build-gpu}
mkdir -p "$OUT"
export PATH=$PATH:/usr/local/cuda/bin
phase() { echo "==== $* ($(date -u +%H:%M:%S))"; }

phase device
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader
phase build
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DBONSAI_CUDA_ARCHS=90a >/dev/null &&
    cmake --build "$BUILD" -j "$(nproc)" 2>&1 | grep -E "error|warning:" 
[ -x "$BUILD/test_cuda" ] || { echo "build failed"; exit 1; }
nvcc -cubin -std=c++17 -gencode=arch=compute_90a,code=sm_90a -Xptxas -v -Isrc/cuda/kernels \
    src/cuda/kernels/gemm_small.cu -o "$OUT/gs.cubin" 2>&1 |
    awk '/Compiling entry/ {name=$7} /spill/ {spill=$5"/"$9} /registers/ {print name, $5, spill}' |
    sed "s/'bonsai_gemm_small_//; s/'//" | paste -s -d' ' > "$OUT/registers.txt"
rm -f "$OUT/gs.cubin"
cat "$OUT/registers.txt"

phase bench
B="$BUILD/bonsai bench kernels --backend cuda --type q1,tq2 --hot -r ${REPS:-15}"
SHAPES=${SHAPES:-4096x4096,24576x4096}
NS=${NS:-2,4,8,16,32,64,100,127}
bench() { # label, token counts, env...
    local label=$1 ns=$2; shift 2
    env "$@" timeout 150 $B --shape $SHAPES -n $ns -o json 2>&1 >/dev/null |
        grep -E "n=" | sed "s/^/$label /" | tee -a "$OUT/bench.log" > /dev/null
}
bench small $NS BONSAI_CUDA_GEMM_SMALL=1
bench rule $NS BONSAI_BENCH_CUDA_NO_CUBLAS=1
bench old $NS BONSAI_CUDA_GEMM_SMALL=0 BONSAI_BENCH_CUDA_NO_CUBLAS=1
if [ -n "${MAIN_BONSAI:-}" ] && "$MAIN_BONSAI" --help > /dev/null 2>&1; then
    B0=$B
    B="$MAIN_BONSAI bench kernels --backend cuda --type q1,tq2 --hot -r ${REPS:-15}"
    bench v1 $NS BONSAI_CUDA_GEMM_SMALL=1 BONSAI_BENCH_CUDA_NO_CUBLAS=1
    bench v1rule $NS BONSAI_BENCH_CUDA_NO_CUBLAS=1
    B=$B0
fi
for ks in ${KS_LIST-1 2 4}; do
    bench small-ks$ks ${NS_KS:-2,16,64} BONSAI_CUDA_GEMM_SMALL=1 BONSAI_CUDA_GEMM_SMALL_KS=$ks BONSAI_BENCH_CUDA_NO_CUBLAS=1
done
for nt in ${NT_LIST:-}; do
    SHAPES=${SHAPES_NT:-$SHAPES} bench small-nt$nt ${NS_NT:-32,64,127} BONSAI_CUDA_GEMM_SMALL=1 BONSAI_CUDA_GEMM_SMALL_NT=$nt BONSAI_BENCH_CUDA_NO_CUBLAS=1
done
phase table
# label type shape n us [cuBLAS us]
awk '{for (i = 1; i <= NF; i++) if ($i ~ /^n=/) { n = $i; sub("n=", "", n); if (n == "") n = $(i+1) }
      us = ""; for (i = 1; i <= NF; i++) if ($i == "us" && us == "") us = $(i-1)
      cb = ""; for (i = 1; i <= NF; i++) if ($i == "fp16") cb = $(i+1)
      print $1, $2, $3, n, us, cb}' "$OUT/bench.log" | sort -k2,2 -k3,3 -k4,4n -k1,1 |
    awk '{k = $2" "$3" "$4; if (k != pk) { if (pk) print line; line = k; pk = k }
          line = line"  "$1"="$5; if ($6) line = line" cublas="$6} END {print line}'
if [ "${TEST:-1}" = 1 ]; then
    phase test_cuda
    if [ "${FULL:-0}" = 1 ]; then
        timeout 300 "$BUILD/test_cuda" > "$OUT/test_cuda.log" 2>&1
    else
        BONSAI_TEST_QUICK=1 timeout 200 "$BUILD/test_cuda" > "$OUT/test_cuda.log" 2>&1
    fi
    echo "test_cuda exit $?"
    grep -E "^FAIL|NMSE .* over all|passed, " "$OUT/test_cuda.log" | head -30
fi
if [ "${MEMCHECK:-0}" = 1 ]; then
    phase memcheck
    BONSAI_TEST_QUICK=1 timeout ${MEMCHECK_TIMEOUT:-300} compute-sanitizer --tool memcheck --error-exitcode 99 \
        "$BUILD/test_cuda" > "$OUT/sanitizer.log" 2>&1
    echo "compute-sanitizer exit: $?"
    grep -E "^FAIL|ERROR SUMMARY|passed, " "$OUT/sanitizer.log" | head -20
fi
