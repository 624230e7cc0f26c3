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

serve: deps build
	@echo "troupe serve arrives with the HTTP server (issue 4); for now try:"
	@echo "  $(BUILD)/troupe generate --prompt 'Once upon a time' --max-tokens 64 --temperature 0"
	@false

clean:
	rm -rf $(BUILD)
