#!/bin/bash
# gemv_b1 experiments on the lent H100 (the gemv4-7 helpers), from the
# repository root (or a carried worktree): binaries built for sm_90a
# (build-gpu/{bonsai,test_cuda,trace_b1}, rebuilt on the device if they do
# not run there), bench of gemv_b1 variants alternating in the same run
# (VARIANTS / SHAPES: "tag:VAR=v,VAR=v ..." with env knobs such as
# BONSAI_CUDA_GEMV_B1_PF16, _TRIGGER, _DEPTH; BIN=path runs another build's
# bonsai, e.g. main's, for the baseline), the %globaltimer trace
# (scripts/gemv-b1-trace.cu; TRACES: "fmt,cache,pf16,trigger,depth ..."),
# then test_cuda (TEST=quick: BONSAI_TEST_QUICK=1; TEST=full: full run and
# compute-sanitizer memcheck with BONSAI_TEST_QUICK=1 concurrently; TEST=none).
# Logs to $OUT.
set -u
export PATH=$PATH:/usr/local/cuda/bin
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
phase() { echo "==== $* ($(date -u +%H:%M:%S))"; }
phase device
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader
if ./build-gpu/bonsai 2>&1 | grep -q GLIBC || ! [ -x build-gpu/trace_b1 ]; then
    phase build
    cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DBONSAI_CUDA_ARCHS=90a >/dev/null &&
        cmake --build build-gpu -j 16 2>&1 | grep -E " error|warning:"
    nvcc -O2 -std=c++17 -DB1_TRACE -gencode=arch=compute_90a,code=sm_90a -Isrc/cuda/kernels \
        scripts/gemv-b1-trace.cu -o build-gpu/trace_b1
fi
for b in build-gpu/trace_b1 ${SASS_OF:-}; do
    cuobjdump -sass "$b" | awk '/Function : bonsai_gemv_b1/{n=$3} /^ +\/\*[0-9a-f]+\*\//{c[n]++} /BMMA|IMMA|LDGSTS|SHFL|UBLKPF/{c[n" "$2]++} END{for(k in c) print c[k], k}' | sort -k2 | sed "s|^|[$b] |"
done
phase bench
export BONSAI_BENCH_CUDA_NO_CUBLAS=1
R="bench kernels --backend cuda --mode q8 -n 1 -r ${REPS:-15}"
run() {
    local tag=$1 ev=${2//,/ } bin=build-gpu/bonsai; shift 2
    for e in $ev; do case $e in BIN=*) bin=${e#BIN=};; esac; done
    env $ev $bin $R "$@" 2>&1 >/dev/null | grep -E "n=1 " | sed "s/^/[$tag] /" | tee -a "$OUT/bench.txt"
}
S24="--type q1,tq2 --shape 24576x4096 --hot --cold"
for v in ${VARIANTS:-base:X=1}; do run ${v%%:*} ${v#*:} $S24; done
SO="--type q1,tq2 --shape 4096x4096,8192x4096,32768x4096,151936x4096 --hot --cold"
for v in ${SHAPES:-}; do run ${v%%:*} ${v#*:} $SO; done
phase trace
for a in ${TRACES:-}; do
    ./build-gpu/trace_b1 ${a//,/ } | tail -1 | tee -a "$OUT/trace.txt"; done
case ${TEST:-quick} in
quick)
    phase "test_cuda (BONSAI_TEST_QUICK=1)"
    BONSAI_TEST_QUICK=1 timeout ${TEST_S:-200} ./build-gpu/test_cuda > "$OUT/test_cuda.log" 2>&1
    grep -E "FAIL" "$OUT/test_cuda.log" | head -12; tail -n 3 "$OUT/test_cuda.log" | grep -E "passed|NMSE";;
full)
    phase "test_cuda and compute-sanitizer (concurrently)"
    timeout ${TEST_S:-200} ./build-gpu/test_cuda > "$OUT/test_cuda.log" 2>&1 &
    BONSAI_TEST_QUICK=1 timeout ${TEST_S:-200} compute-sanitizer --tool memcheck --error-exitcode 99 ./build-gpu/test_cuda > "$OUT/sanitizer.log" 2>&1
    echo "sanitizer rc $?"; wait; echo "test_cuda done"
    grep -E "FAIL" "$OUT/test_cuda.log" | head -12; tail -n 3 "$OUT/test_cuda.log" | grep -E "passed|NMSE"
    grep -E "FAIL" "$OUT/sanitizer.log" | head -5; grep -E "ERROR SUMMARY|passed, " "$OUT/sanitizer.log" | tail -3;;
esac
phase done
