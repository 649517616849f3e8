# medlens: the two commands users need are `make demo` and `make test`; both install what is
# missing first, so a fresh Debian machine needs nothing by hand.
BUILD      ?= build
FUZZ_BUILD ?= build-fuzz
JOBS       ?= $(shell nproc)
FUZZ_SECONDS ?= 30
CMAKE_FLAGS ?=

.PHONY: all deps configure build demo test unit fuzz bench models clean

all: build

deps:
	@scripts/install-deps.sh

$(BUILD)/build.ninja: CMakeLists.txt | deps
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS)

configure: deps $(BUILD)/build.ninja

build: configure
	cmake --build $(BUILD) -j $(JOBS)

demo: build
	@scripts/demo.sh $(BUILD)

unit: build
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS)

fuzz: deps
	@scripts/fuzz.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

test: unit fuzz

bench: build
	@scripts/bench.sh $(BUILD)

# Retrain the default models from their recipes (models/*/train.json) on the full datasets
# in ../shared/datasets, or DATASETS=/path/to/datasets.
models: build
	@scripts/train-models.sh $(BUILD)

clean:
	rm -rf $(BUILD) $(FUZZ_BUILD)
