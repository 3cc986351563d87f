# EarTag build, test and run entry points. `make run` and `make test` work on a fresh Debian machine.
SHELL := /bin/bash
SWIFT ?= swift
# Debian packages the build and the tests need.
DEB_PACKAGES := libsndfile1-dev libsoxr-dev libfftw3-dev libasound2-dev pkg-config sox
REFERENCE ?= ../shared/reference
# Model used by `make run`: the official checkpoint imported from the reference folder (never committed).
RUN_MODEL ?= .build/models/mn04_as.safetensors
# Build for the CPU that runs the binary, as an embedded build does for its board (`make build CPU=` for a
# portable binary; `CPU=cortex-a72` etc. when cross-building for a board).
CPU ?= native
CPU_FLAGS := $(if $(CPU),-Xswiftc -target-cpu -Xswiftc $(CPU))
RELEASE_FLAGS := -c release $(CPU_FLAGS)
TEST_FLAGS := $(RELEASE_FLAGS) -Xswiftc -enable-testing
BIN := .build/release/eartag

.PHONY: deps build test test-tsan run clean

## deps: install the Debian packages (apt-get update first only when something is missing).
deps:
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	else echo "deps: all installed"; fi

## build: release build of the eartag binary.
build: deps
	$(SWIFT) build $(TEST_FLAGS) --product eartag

## test: every test, optimised (numeric code is 10-100x slower in debug builds).
test: deps
	$(SWIFT) build $(TEST_FLAGS) --product eartag
	$(SWIFT) test $(TEST_FLAGS) --disable-swift-testing

## test-tsan: the whole suite under ThreadSanitizer (optimised; its own build folder).
test-tsan: deps
	$(SWIFT) test $(TEST_FLAGS) --disable-swift-testing --sanitize=thread --scratch-path .build-tsan

$(RUN_MODEL): | build
	@mkdir -p $(dir $(RUN_MODEL))
	$(BIN) import $(REFERENCE)/efficientat/mn04_as_mAP_432.pt -o $(RUN_MODEL)

## run: tag the reference recordings with the imported mn04_as model, then stream them through `eartag listen`.
run: build $(RUN_MODEL)
	EARTAG_MODEL=$(RUN_MODEL) $(BIN) tag $(REFERENCE)/audio/*.wav
	@echo "--- live: the four recordings, one after another, piped through eartag listen --stdin (5 s windows)"
	for f in $(REFERENCE)/audio/*.wav; do sox -q "$$f" -t raw -r 32000 -e signed -b 16 -c 1 -; done | \
	  EARTAG_MODEL=$(RUN_MODEL) $(BIN) listen --stdin --window 5 --hop 1

clean:
	rm -rf .build
