# Entry points: `make` builds build/troupe, `make test` installs what is missing, builds and runs every test.
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?= -DCMAKE_BUILD_TYPE=Release

.PHONY: all deps configure build test serve clean

all: build

deps:
	./scripts/install-deps.sh

configure:
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS)

build: configure
	cmake --build $(BUILD) -j $(JOBS)

test: deps build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

# The OpenAI-compatible server on the bundled model at http://127.0.0.1:8000 (SERVE_ARGS adds flags,
# e.g. make serve SERVE_ARGS="--port 9000 --model /path/to/model"); builds only the program.
serve: deps configure
	cmake --build $(BUILD) -j $(JOBS) --target troupe
	$(BUILD)/troupe serve $(SERVE_ARGS)

clean:
	rm -rf $(BUILD)
