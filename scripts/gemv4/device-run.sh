#!/bin/bash
# gemv4 device run (the lent H100): build for sm_90a, register report,
# bench main's kernel (BONSAI_CUDA_GEMV_B1=0) against gemv_b1 in the same
# run, then test_cuda and compute-sanitizer memcheck. Logs to $OUT.
set -u
export PATH=$PATH:/usr/local/cuda/bin
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
phase() { echo "==== $* ($(date -u +%H:%M:%S))"; }
phase device
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader
phase build
cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DBONSAI_CUDA_ARCHS=90a >/dev/null &&
    cmake --build build-gpu -j 16 2>&1 | grep -E "error|warning" | tee "$OUT/build.log"
[ -x build-gpu/test_cuda ] || { echo "build failed"; exit 1; }
nvcc -cubin -std=c++17 -gencode=arch=compute_90a,code=sm_90a -Xptxas -v -Isrc/cuda/kernels \
    src/cuda/kernels/gemv_b1.cu -o /tmp/b1.cubin 2>&1 | grep -E "registers|spill"
phase bench
export BONSAI_BENCH_CUDA_NO_CUBLAS=1
B="./build-gpu/bonsai bench kernels --backend cuda -n 1 -r ${REPS:-21}"
run() { local tag=$1; shift; env "$@" 2>&1 >/dev/null | grep -E "n=1 " | sed "s/^/[$tag] /" | tee -a "$OUT/bench.txt"; }
# VARIANTS / RANGE: "tag,ENV=value,..." words; main = gemv.cu as on main
for v in ${VARIANTS:-main,BONSAI_CUDA_GEMV_B1=0 b1,X=1 main,BONSAI_CUDA_GEMV_B1=0 b1,X=1}; do
    set -- ${v//,/ }; tag=$1; shift
    run "$tag" "$@" $B --type q1,tq2 --shape 24576x4096 --hot --cold
done
for v in ${RANGE:-}; do
    set -- ${v//,/ }; tag=$1; shift
    run "$tag" "$@" $B --type q1,tq2 --shape 8192x4096,12288x4096,32768x4096 --hot --cold
done
run default X=1 $B --type q1,tq2 --shape 4096x4096,151936x4096 --hot --cold
[ -n "${LMHEAD:-}" ] && run b1-lmhead BONSAI_CUDA_GEMV_B1=1 $B --type q1,tq2 --shape 151936x4096 --cold
phase "test_cuda and compute-sanitizer (concurrently)"
timeout 300 ./build-gpu/test_cuda > "$OUT/test_cuda.log" 2>&1 &
BONSAI_TEST_QUICK=1 timeout 300 compute-sanitizer --tool memcheck --error-exitcode 99 ./build-gpu/test_cuda > "$OUT/sanitizer.log" 2>&1
echo "sanitizer rc $?"; wait; echo "test_cuda done"
grep -E "FAIL" "$OUT/test_cuda.log" | head -12; tail -n 8 "$OUT/test_cuda.log" | grep -E "passed|NMSE"
grep -E "FAIL" "$OUT/sanitizer.log" | head -5; grep -E "ERROR SUMMARY|passed, " "$OUT/sanitizer.log" | tail -3
phase done
