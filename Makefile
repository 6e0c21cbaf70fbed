# The two commands: `make run` and `make test`. Everything else is CMake.
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: all build run test test-native test-aarch64 clean

all: build

build:
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

run: build
	@$(BUILD)/bonsai --version
	@$(BUILD)/bonsai bench kernels --shape 4096x4096,4096x12288 --type q1,tq2 --mode q8,f32 -r 5

test: test-native test-aarch64

test-native: build
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

# NEON tier: cross-compiled and run under qemu when the toolchain is present.
test-aarch64:
	@./cmake/test-aarch64.sh

clean:
	rm -rf $(BUILD) $(BUILD)-aarch64
