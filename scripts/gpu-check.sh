#!/bin/bash
# The GPU check, run on a machine with an NVIDIA GPU (the lent H100):
# builds with cmake for sm_90a, prints the kernels' register/spill report,
# runs every test, runs test_cuda under compute-sanitizer memcheck, prints
# `bonsai info` and runs the CUDA kernel bench. Logs go to $OUT (default
# ./gpu-check-out); the last lines printed are the summary for bench/NOTES.md.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$(pwd)/gpu-check-out}
BUILD=${BUILD:-build-gpu}
mkdir -p "$OUT"
export PATH=$PATH:/usr/local/cuda/bin
phase() { echo; echo "==== $* ($(date -u +%H:%M:%S))"; }

phase device
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm,power.limit \
    --format=csv 2>&1 | tee "$OUT/setup.log"

phase build
start=$(date +%s)
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DBONSAI_CUDA_ARCHS=90a >/dev/null &&
    cmake --build "$BUILD" -j "$(nproc)" 2>&1 | grep -E "error|warning|nvcc" | tee -a "$OUT/setup.log"
echo "build: $(( $(date +%s) - start )) s"
[ -x "$BUILD/test_cuda" ] || { echo "build failed"; exit 1; }

phase "register / spill report (ptxas, sm_90a)"
nvcc -cubin -std=c++17 -gencode=arch=compute_90a,code=sm_90a -Xptxas -v -Isrc/cuda/kernels \
    "$BUILD/src/cuda/bonsai_kernels.cu" -o "$OUT/kernels_sm90.cubin" 2>&1 |
    awk '/Compiling entry/ {name=$7} /registers/ {regs=$5} /spill/ {spill=$5" "$9} /registers/ {print name, regs" regs,", "spill st/ld bytes:", spill}' |
    tee "$OUT/registers.txt"
# one file: the device tool brings back at most 8
for f in bonsai_gemm_q1 bonsai_gemv_q1_t1 bonsai_gemm90_q1 bonsai_gemm90h_q1 bonsai_gemv_b1_q1; do
    cuobjdump -sass -fun $f "$OUT/kernels_sm90.cubin" 2>&1
done > "$OUT/kernels_q1.sass"
rm -f "$OUT/kernels_sm90.cubin"

phase "tests"
# test_cuda once, on its own (its summary line is wanted; it is the longest)
(cd "$BUILD" && timeout 420 ctest --output-on-failure -j 8 -E '^test_cuda$') 2>&1 |
    tee "$OUT/ctest.log" | tail -25
timeout 300 "$BUILD/test_cuda" 2>&1 | grep -E "FAIL|skip|passed, " | tail -20 | tee -a "$OUT/ctest.log"

phase "compute-sanitizer memcheck: test_cuda (pipeline cases skipped: BONSAI_TEST_QUICK)"
BONSAI_TEST_QUICK=1 timeout 300 compute-sanitizer --tool memcheck --error-exitcode 99 \
    "$BUILD/test_cuda" > "$OUT/sanitizer.log" 2>&1
echo "compute-sanitizer exit: $?"
grep -E "ERROR SUMMARY|passed, " "$OUT/sanitizer.log"

phase "bonsai info"
"$BUILD/bonsai" info 2>&1 | grep -i cuda

phase "bench"
B="$BUILD/bonsai bench kernels --backend cuda"
timeout 200 $B --type q1,tq2 --shape 4096x4096,24576x4096,151936x4096 -n 1 --hot --cold \
    -o json > "$OUT/bench_gemv.json" 2> "$OUT/bench_gemv.err"
cat "$OUT/bench_gemv.err"
timeout 120 $B --type q1,tq2 --shape 4096x4096,24576x4096 -n 2,8,16,32,64,512,2048 --hot \
    -o json > "$OUT/bench_gemm.json" 2> "$OUT/bench_gemm.err"
tail -n +3 "$OUT/bench_gemm.err"
cat "$OUT/bench_gemm.err" >> "$OUT/bench_gemv.err" && rm "$OUT/bench_gemm.err"
cat "$OUT/setup.log" >> "$OUT/registers.txt" && rm "$OUT/setup.log"


phase "GEMM with 64-token tiles (BONSAI_CUDA_GEMM_BN=64)"
BONSAI_CUDA_GEMM_BN=64 timeout 90 $B --type q1,tq2 --shape 4096x4096,24576x4096 \
    -n 64,512,2048 --hot -r 15 -o json 2>&1 >/dev/null | grep -E "n=" | sed "s/^/bn64 /" |
    tee -a "$OUT/bench_gemv.err"

phase "GEMM on gemm90h's fp16 wgmma at every token count (BONSAI_CUDA_GEMM_F16=1; default: below 1024)"
BONSAI_CUDA_GEMM_F16=1 timeout 90 $B --type q1,tq2 --shape 4096x4096,24576x4096 \
    -n 512,2048 --hot -r 15 -o json 2>&1 >/dev/null | grep -E "n=" | sed "s/^/fp16 gemm90h /" |
    tee -a "$OUT/bench_gemv.err"

phase "GEMM on gemm90's int8 wgmma at every token count (BONSAI_CUDA_GEMM_F16=0; default: from 1024)"
BONSAI_CUDA_GEMM_F16=0 timeout 90 $B --type q1,tq2 --shape 4096x4096,24576x4096 \
    -n 512,2048 --hot -r 15 -o json 2>&1 >/dev/null | grep -E "n=" | sed "s/^/int8 gemm90 /" |
    tee -a "$OUT/bench_gemv.err"

phase "GEMM on gemm.cu's mma.sync tiles instead of wgmma (BONSAI_CUDA_GEMM_WGMMA=0)"
BONSAI_CUDA_GEMM_WGMMA=0 timeout 90 $B --type q1,tq2 --shape 4096x4096,24576x4096 \
    -n 64,512,2048 --hot -r 15 -o json 2>&1 >/dev/null | grep -E "n=" | sed "s/^/mma.sync /" |
    tee -a "$OUT/bench_gemv.err"

phase "summary"
grep -m1 "^device:" "$OUT/bench_gemv.err"
grep -E "tests passed|tests failed" "$OUT/ctest.log"
grep -E "passed, .* failed" "$OUT/ctest.log" | tail -1 | sed "s/^/test_cuda: /"
grep -E "ERROR SUMMARY|passed, " "$OUT/sanitizer.log" | sed "s/^/memcheck: /"
