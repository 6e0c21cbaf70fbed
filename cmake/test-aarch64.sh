#!/bin/sh
# Builds the library and tests for aarch64 and runs them under qemu-aarch64,
# so the NEON tier is tested on x86 hosts. The tests run twice: on qemu's
# "max" CPU, which has DOTPROD (the SDOT kernels run), and on a Cortex-A57,
# an ARMv8.0 core without it (the vpadal kernels run, and any DOTPROD
# instruction outside the DOTPROD path would stop the run with SIGILL).
# Skipped (and said so) when the cross compiler or qemu is absent, or when
# the host already is aarch64.
set -e
BUILD=${BUILD:-build}-aarch64
case "$(uname -m)" in aarch64|arm64)
    echo "aarch64 tests: skipped (host is aarch64; the native tests covered NEON)"; exit 0;;
esac
if ! command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 || ! command -v qemu-aarch64 >/dev/null 2>&1 \
    || [ ! -d /usr/aarch64-linux-gnu/lib ]; then
    echo "aarch64 tests: SKIPPED (install gcc-aarch64-linux-gnu, libc6-dev-arm64-cross and qemu-user to run them)"
    exit 0
fi
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_TOOLCHAIN_FILE="$(pwd)/cmake/aarch64-linux-gnu.cmake" -DBONSAI_CUDA=OFF >/dev/null
cmake --build "$BUILD" -j "$(nproc)"
cd "$BUILD"
echo "aarch64 tests, run 1 of 2: QEMU_CPU=max (NEON with DOTPROD)"
QEMU_CPU=max ctest --output-on-failure -j "$(nproc)"
echo "aarch64 tests, run 2 of 2: QEMU_CPU=cortex-a57 (NEON without DOTPROD)"
QEMU_CPU=cortex-a57 ctest --output-on-failure -j "$(nproc)"
echo "aarch64 tests: passed with and without DOTPROD"
