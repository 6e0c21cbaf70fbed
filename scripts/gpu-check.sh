#!/bin/bash
# The GPU check, run on a machine with an NVIDIA GPU (the lent H100):
# builds with cmake for sm_90a, runs every test, prints `bonsai info`, runs
# the CUDA kernel bench, prints the kernels' register/spill report, runs
# test_cuda under compute-sanitizer memcheck (MEMCHECK=0 skips it) and
# benches the forced alternatives to the default GEMM paths (VARIANTS=0
# skips them): the most wanted results come first, so a run cut short by
# its time limit still has them. Logs go to $OUT (default ./gpu-check-out);
# the last lines printed are the summary for bench/NOTES.md.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$(pwd)/gpu-check-out}
BUILD=${BUILD:-build-gpu}
MEMCHECK=${MEMCHECK:-1}
VARIANTS=${VARIANTS:-1}
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

phase "tests"
# test_cuda once, on its own (its summary line is wanted; it is the longest)
(cd "$BUILD" && timeout 420 ctest --output-on-failure -j 8 -E '^test_cuda$') 2>&1 |
    tee "$OUT/ctest.log" | tail -25
timeout 300 "$BUILD/test_cuda" 2>&1 | grep -E "FAIL|skip|passed, " | tail -20 | tee -a "$OUT/ctest.log"

phase "bonsai info"
"$BUILD/bonsai" info 2>&1 | grep -i cuda

phase "bench"
B="$BUILD/bonsai bench kernels --backend cuda"
timeout 200 $B --type q1,tq2 --shape 4096x4096,24576x4096,151936x4096 -n 1 --hot --cold \
    -o json > "$OUT/bench_gemv.json" 2> "$OUT/bench.txt"
cat "$OUT/bench.txt"
timeout 150 $B --type q1,tq2 --shape 4096x4096,24576x4096 -n 2,8,16,32,64,128,512,2048 --hot \
    -o json > "$OUT/bench_gemm.json" 2> "$OUT/bench_gemm.err"
tail -n +3 "$OUT/bench_gemm.err"
cat "$OUT/bench_gemm.err" >> "$OUT/bench.txt" && rm "$OUT/bench_gemm.err"

phase "register / spill report (ptxas, sm_90a)"
nvcc -cubin -std=c++17 -gencode=arch=compute_90a,code=sm_90a -Xptxas -v -Isrc/cuda/kernels \
    "$BUILD/src/cuda/bonsai_kernels.cu" -o "$OUT/kernels_sm90.cubin" 2>&1 |
    awk '/Compiling entry/ {name=$7} /registers/ {regs=$5} /spill/ {spill=$5" "$9} /registers/ {print name, regs" regs,", "spill st/ld bytes:", spill}' |
    tee "$OUT/registers.txt"
cat "$OUT/setup.log" >> "$OUT/registers.txt" && rm "$OUT/setup.log"
# one file: the device tool brings back at most 8
for f in bonsai_gemv_b1_q1 bonsai_gemm_small_q1_n2 bonsai_gemm90h_q1 bonsai_gemm90h_q1_128x256; do
    cuobjdump -sass -fun $f "$OUT/kernels_sm90.cubin" 2>&1
done > "$OUT/kernels_q1.sass"
rm -f "$OUT/kernels_sm90.cubin"

if [ "$MEMCHECK" = 1 ]; then
    phase "compute-sanitizer memcheck: test_cuda (pipeline cases skipped: BONSAI_TEST_QUICK)"
    BONSAI_TEST_QUICK=1 timeout 400 compute-sanitizer --tool memcheck --error-exitcode 99 \
        "$BUILD/test_cuda" > "$OUT/sanitizer.log" 2>&1
    echo "compute-sanitizer exit: $?"
    grep -E "ERROR SUMMARY|passed, " "$OUT/sanitizer.log"
fi

# forced alternatives to the defaults, same shapes (bench lines prefixed)
variant() {
    local label=$1 env=$2 tokens=$3
    phase "$label ($env)"
    env "$env" timeout 90 $B --type q1,tq2 --shape 4096x4096,24576x4096 -n "$tokens" --hot \
        -r 15 -o json 2>&1 >/dev/null | grep -E "n=" | sed "s/^/$label /" | tee -a "$OUT/bench.txt"
}
if [ "$VARIANTS" = 1 ]; then
    variant "gemv+gemm.cu" BONSAI_CUDA_GEMM_SMALL=0 8,16,64
    variant "gemm90h 128x128" BONSAI_CUDA_GEMM90H_TILE=128x128 512,2048
    variant "int8 gemm90" BONSAI_CUDA_GEMM_F16=0 512,2048
    variant "mma.sync" BONSAI_CUDA_GEMM_WGMMA=0 512
fi

phase "summary"
grep -m1 "^device:" "$OUT/bench.txt"
grep -E "tests passed|tests failed" "$OUT/ctest.log"
grep -E "passed, .* failed" "$OUT/ctest.log" | tail -1 | sed "s/^/test_cuda: /"
[ "$MEMCHECK" = 1 ] && grep -E "ERROR SUMMARY|passed, " "$OUT/sanitizer.log" | sed "s/^/memcheck: /"
exit 0
