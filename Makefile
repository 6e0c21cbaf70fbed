# The two commands: `make run` and `make test`. Everything else is CMake.
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=
# the model `make run` generates with: synthesized on first use
RUN_MODEL ?= $(BUILD)/models/bonsai-1.7b.gguf

.PHONY: all build run test test-native test-aarch64 fuzz clean

all: build

build:
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

run: build
	@$(BUILD)/bonsai --version
	@$(BUILD)/bonsai bench kernels --shape 4096x4096,4096x12288 --type q1,tq2 --mode q8,f32 -r 5
	@test -f $(RUN_MODEL) || { mkdir -p $(dir $(RUN_MODEL)) && echo "synthesizing $(RUN_MODEL) (once; random weights, Bonsai-1.7B shape)"; \
		$(BUILD)/bonsai synth --preset bonsai-1.7b -o $(RUN_MODEL); }
	@echo "bonsai run: 32 tokens after an 8-token prompt (token ids; greedy)"
	@$(BUILD)/bonsai run -m $(RUN_MODEL) -p 1,2,3,4,5,6,7,8 -n 32 --temp 0

test: test-native test-aarch64

test-native: build
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

# NEON tier: cross-compiled and run under qemu when the toolchain is present.
test-aarch64:
	@./cmake/test-aarch64.sh

# GGUF reader fuzzing (clang + libFuzzer + ASan), FUZZ_SECONDS long, seeded
# with synthesized micro models; not part of build or test.
FUZZ_SECONDS ?= 60
fuzz: build
	@cmake -S . -B $(BUILD)-fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
		-DBONSAI_FUZZ=ON -DBONSAI_CUDA=OFF >/dev/null
	@cmake --build $(BUILD)-fuzz -j $(JOBS) --target fuzz_gguf
	@mkdir -p $(BUILD)-fuzz/corpus
	@for t in q1_0_g128 tq2_0_g128 q2_0_g64; do \
		$(BUILD)/bonsai synth --preset micro --type $$t -o $(BUILD)-fuzz/corpus/micro-$$t.gguf; done
	$(BUILD)-fuzz/fuzz/fuzz_gguf -max_total_time=$(FUZZ_SECONDS) -max_len=65536 $(BUILD)-fuzz/corpus

clean:
	rm -rf $(BUILD) $(BUILD)-aarch64 $(BUILD)-fuzz
