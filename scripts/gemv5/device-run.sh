#!/bin/bash
# gemv5 device run (the lent H100), from the carried worktree: build it and
# the checkout above it (main) for sm_90a, quick test_cuda of the worktree,
# bench main's gemv_b1 against this one in the same run (alternating), the
# %globaltimer trace of this kernel, then test_cuda and compute-sanitizer.
# Logs to $OUT. MAIN: path of main's checkout (default ../..).
set -u
export PATH=$PATH:/usr/local/cuda/bin
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
MAIN=${MAIN:-../..}
phase() { echo "==== $* ($(date -u +%H:%M:%S))"; }
phase device
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader
phase build
build() { cmake -S "$1" -B "$2" -DCMAKE_BUILD_TYPE=Release -DBONSAI_CUDA_ARCHS=90a >/dev/null &&
    cmake --build "$2" -j 8 2>&1 | grep -E "error|warning"; }
build . build-gpu > "$OUT/build.log" 2>&1 &
build "$MAIN" build-main > "$OUT/build-main.log" 2>&1 &
nvcc -O2 -std=c++17 -DB1_TRACE -gencode=arch=compute_90a,code=sm_90a -Isrc/cuda/kernels \
    scripts/gemv5/trace_b1.cu -o /tmp/trace_b1 2>&1 | head -5 &
wait
cat "$OUT/build.log" "$OUT/build-main.log" | head -20
[ -x build-gpu/test_cuda ] && [ -x build-main/bonsai ] || { echo "build failed"; exit 1; }
nvcc -cubin -std=c++17 -gencode=arch=compute_90a,code=sm_90a -Xptxas -v -Isrc/cuda/kernels \
    src/cuda/kernels/gemv_b1.cu -o /tmp/b1.cubin 2>&1 | grep -E "registers|spill"
if [ -n "${QUICK:-}" ]; then
    phase "quick test_cuda"
    BONSAI_TEST_QUICK=1 timeout 120 ./build-gpu/test_cuda > "$OUT/test_quick.log" 2>&1
    grep -E "FAIL" "$OUT/test_quick.log" | head -8; tail -n 2 "$OUT/test_quick.log"
fi
phase bench
export BONSAI_BENCH_CUDA_NO_CUBLAS=1
R="bench kernels --backend cuda -n 1 -r ${REPS:-21}"
run() { local tag=$1 bin=$2 ev=$3; shift 3; env $ev $bin $R "$@" 2>&1 >/dev/null | grep -E "n=1 " | sed "s/^/[$tag] /" | tee -a "$OUT/bench.txt"; }
for i in 1 2; do
    run main build-main/bonsai X=1 --type q1,tq2 --shape 24576x4096 --hot --cold
    run new build-gpu/bonsai X=1 --type q1,tq2 --shape 24576x4096 --hot --cold
done
for v in ${VARIANTS:-}; do
    set -- ${v//,/ }; tag=$1; shift
    run "$tag" build-gpu/bonsai "$*" --type q1,tq2 --shape 24576x4096 --hot --cold
done
run main build-main/bonsai X=1 --type q1,tq2 --shape 4096x4096,8192x4096,32768x4096,151936x4096 --hot --cold
for v in ${SHAPES:-new,X=1}; do
    set -- ${v//,/ }; tag=$1; shift
    run "$tag" build-gpu/bonsai "$*" --type q1,tq2 --shape 4096x4096,8192x4096,32768x4096,151936x4096 --hot --cold
done
phase trace
for tr in ${TRIGGERS:-0}; do for f in q1 tq2; do for c in hot cold; do
    /tmp/trace_b1 $f $c 8 $tr | tail -1 | tee -a "$OUT/trace.txt"; done; done; done
phase "test_cuda and compute-sanitizer (concurrently)"
timeout ${TEST_S:-240} ./build-gpu/test_cuda > "$OUT/test_cuda.log" 2>&1 &
BONSAI_TEST_QUICK=1 timeout ${TEST_S:-240} compute-sanitizer --tool memcheck --error-exitcode 99 ./build-gpu/test_cuda > "$OUT/sanitizer.log" 2>&1
echo "sanitizer rc $?"; wait; echo "test_cuda done"
grep -E "FAIL" "$OUT/test_cuda.log" | head -12; tail -n 3 "$OUT/test_cuda.log" | grep -E "passed|NMSE"
grep -E "FAIL" "$OUT/sanitizer.log" | head -5; grep -E "ERROR SUMMARY|passed, " "$OUT/sanitizer.log" | tail -3
phase done
