# EarTag build, test and run entry points. `make run` and `make test` work on a fresh Debian machine.
SHELL := /bin/bash
SWIFT ?= swift
# Debian packages the build and the tests need.
DEB_PACKAGES := libsndfile1-dev libvorbis-dev libsoxr-dev libfftw3-dev libasound2-dev pkg-config sox mosquitto mosquitto-clients tmux
REFERENCE ?= ../shared/reference
# Model used by `make run`: empty = the default model search (README "Models"), which finds the committed
# Weights/default.safetensors from the source tree; `make run MODEL=FILE` runs another (e.g. an imported checkpoint).
MODEL ?=
# Build for the CPU that runs the binary, as an embedded build does for its board (`make build CPU=` for a
# portable binary; `CPU=cortex-a72` etc. when cross-building for a board).
CPU ?= native
# With CPU=native on a CPU with AVX-512 VNNI, the int8 1x1 convs use vpdpbusd (Sources/EarTagKernels/Int8Dot4.swift).
VNNI := $(if $(filter native,$(CPU)),$(shell grep -qw avx512_vnni /proc/cpuinfo 2>/dev/null && echo y))
CPU_FLAGS := $(if $(CPU),-Xswiftc -target-cpu -Xswiftc $(CPU)) $(if $(VNNI),-Xswiftc -DEARTAG_AVX512_VNNI)
RELEASE_FLAGS := -c release $(CPU_FLAGS)
TEST_FLAGS := $(RELEASE_FLAGS) -Xswiftc -enable-testing
BIN := .build/release/eartag

.PHONY: deps build test test-reference test-tsan test-asan run clean install uninstall build-static deb verify-unit test-packaging \
        clean-packaging test-systemd corpus test-weights-path

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

## corpus: the distillation corpus from Debian's sound packages (apt-get download + dpkg -x, nothing installed)
# into .build/corpus/$(CORPUS_SIZE)/ (clips/ and manifest.csv); CORPUS_SIZE=small is the few-hundred-clip variant,
# CORPUS_SIZE=tiny the miniature of test-weights-path.
CORPUS_SIZE ?= full
corpus: deps
	$(SWIFT) build $(TEST_FLAGS) --product eartag-train
	tools/make-corpus --size $(CORPUS_SIZE) --train-tool .build/release/eartag-train

## test-weights-path: the whole path to the shipped models (README "Models") in miniature, failing on any error:
# the tiny corpus, mn04_as imported from $(REFERENCE) as the teacher, its logits (`eartag teach`), one epoch of a
# width-0.1 student (`eartag train`), its int8 model (at most 1 MB) tagging a clip as the default model of a
# checkout (Weights/default.safetensors, no --model), and bench/labelled-eval of teacher and student. Everything
# goes to .build/weights-path/ (rewritten on each run).
WP := .build/weights-path
WP_CORPUS := .build/corpus/tiny
test-weights-path: deps
	$(SWIFT) build $(TEST_FLAGS) --product eartag
	$(MAKE) --no-print-directory corpus CORPUS_SIZE=tiny
	rm -rf $(WP) && mkdir -p $(WP)
	$(BIN) import $(REFERENCE)/efficientat/mn04_as_mAP_432.pt -o $(WP)/mn04_as.safetensors
	$(BIN) teach --teacher $(WP)/mn04_as.safetensors --data $(WP_CORPUS) -o $(WP)/teacher
	$(BIN) train --width 0.1 --epochs 1 --batch-size 4 --data $(WP_CORPUS) --teacher $(WP)/teacher -o $(WP)/mn01
	@size=$$(stat -c %s $(WP)/mn01/model.int8.safetensors) && echo "int8 student: $$size bytes" && \
	  test "$$size" -le 1048576 || { echo "test-weights-path: the int8 student is over 1 MB" >&2; exit 1; }
	mkdir -p $(WP)/checkout/Weights && cp $(WP)/mn01/model.int8.safetensors $(WP)/checkout/Weights/default.safetensors
	cd $(WP)/checkout && env -u EARTAG_MODEL $(CURDIR)/$(BIN) tag --top 3 $(abspath $(REFERENCE))/audio/speech.wav
	bench/labelled-eval --corpus $(WP_CORPUS) --model $(WP)/mn04_as.safetensors \
	  --model $(WP)/mn01/model.safetensors --model $(WP)/mn01/model.int8.safetensors

## test: every test, optimised (numeric code is 10-100x slower in debug builds).
test: deps
	$(SWIFT) build $(TEST_FLAGS) --product eartag
	$(SWIFT) test $(TEST_FLAGS) --disable-swift-testing

## test-reference: the whole suite again with the int8 engine on its scalar reference kernels
## (EARTAG_KERNELS=reference: what a CPU without the targeted vector units can fall back to); after `make test` the
## build is already up to date.
test-reference: deps
	$(SWIFT) build $(TEST_FLAGS) --product eartag
	EARTAG_KERNELS=reference $(SWIFT) test $(TEST_FLAGS) --disable-swift-testing

## test-tsan: the whole suite under ThreadSanitizer (optimised; its own build folder).
test-tsan: deps
	EARTAG_SANITIZER=thread $(SWIFT) test $(TEST_FLAGS) --disable-swift-testing --sanitize=thread \
	  --scratch-path .build-tsan

## test-asan: the whole suite under AddressSanitizer and LeakSanitizer (optimised; its own build folder). The
## binaries the CLI tests run are built with ASan too, so a leak or overflow in them fails their test (exit status).
## Swift's own crash backtracer is off: its memory reader trips ASan and hides the real report.
test-asan: deps
	EARTAG_SANITIZER=address ASAN_OPTIONS=$${ASAN_OPTIONS:-detect_leaks=1} SWIFT_BACKTRACE=enable=no \
	  LSAN_OPTIONS=suppressions=$(CURDIR)/Tests/lsan-suppressions.txt \
	  $(SWIFT) test $(TEST_FLAGS) --disable-swift-testing --sanitize=address --scratch-path .build-asan

## run: tag the reference recordings with the default model (no --model: the search of README "Models" finds
# Weights/default.safetensors here), then stream them through `eartag listen`.
run: build
	$(BIN) tag $(if $(MODEL),--model $(MODEL)) $(REFERENCE)/audio/*.wav
	@echo "--- live: the four recordings, one after another, piped through eartag listen --stdin (5 s windows)"
	for f in $(REFERENCE)/audio/*.wav; do sox -q "$$f" -t raw -r 32000 -e signed -b 16 -c 1 -; done | \
	  $(BIN) listen $(if $(MODEL),--model $(MODEL)) --stdin --window 5 --hop 1

clean:
	rm -rf .build

# ---------------------------------------------------------------------------------------------------------------
# Installation and Debian package (see docs/service.md).

PREFIX ?= /usr/local
DESTDIR ?=
BINDIR ?= $(PREFIX)/bin
DATADIR ?= $(PREFIX)/share/eartag
DOCDIR ?= $(PREFIX)/share/doc/eartag
UNITDIR ?= /lib/systemd/system
CONFDIR ?= /etc/eartag
# The binary `make install` copies; `make deb` passes the static-stdlib build instead.
INSTALL_BIN ?= $(BIN)
# The offline tools (`eartag teach|train` run them), installed when built beside INSTALL_BIN
# (`swift build -c release --product eartag-train`); the .deb (the device's package) leaves them out.
INSTALL_TRAIN_BIN ?= $(dir $(INSTALL_BIN))eartag-train
WEIGHTS := Weights/default.safetensors
# The unit and the example configuration name /usr/bin and /usr/share: rewritten for the installed prefix.
UNIT_SED := -e 's|^ExecStart=/usr/bin/eartag |ExecStart=$(BINDIR)/eartag |' \
            -e 's| --config /etc/eartag/eartag.toml| --config $(CONFDIR)/eartag.toml|' \
            -e 's|^Documentation=file:/usr/share/doc/eartag/|Documentation=file:$(DOCDIR)/|'
CONF_SED := -e 's|"/usr/share/eartag/default.safetensors"|"$(DATADIR)/default.safetensors"|'

## install: binary, unit, example config (kept when one exists), docs and default weights (when present).
install:
	@test -x "$(INSTALL_BIN)" || { echo "install: $(INSTALL_BIN) is missing: run 'make build' first" >&2; exit 1; }
	install -D -m 0755 "$(INSTALL_BIN)" "$(DESTDIR)$(BINDIR)/eartag"
	@if [ -x "$(INSTALL_TRAIN_BIN)" ]; then \
	  echo "install -D -m 0755 $(INSTALL_TRAIN_BIN) $(DESTDIR)$(BINDIR)/eartag-train"; \
	  install -D -m 0755 "$(INSTALL_TRAIN_BIN)" "$(DESTDIR)$(BINDIR)/eartag-train"; \
	else echo "install: no $(INSTALL_TRAIN_BIN): eartag teach/train need it (swift build -c release --product eartag-train)"; fi
	@mkdir -p "$(DESTDIR)$(UNITDIR)"
	sed $(UNIT_SED) systemd/eartag.service > "$(DESTDIR)$(UNITDIR)/eartag.service"
	chmod 0644 "$(DESTDIR)$(UNITDIR)/eartag.service"
	@mkdir -p "$(DESTDIR)$(CONFDIR)"
	@if [ -e "$(DESTDIR)$(CONFDIR)/eartag.toml" ]; then \
	  echo "install: keeping the existing $(DESTDIR)$(CONFDIR)/eartag.toml"; \
	else \
	  echo "sed ... systemd/eartag.toml > $(DESTDIR)$(CONFDIR)/eartag.toml"; \
	  sed $(CONF_SED) systemd/eartag.toml > "$(DESTDIR)$(CONFDIR)/eartag.toml" && \
	  chmod 0644 "$(DESTDIR)$(CONFDIR)/eartag.toml"; \
	fi
	install -D -m 0644 docs/service.md "$(DESTDIR)$(DOCDIR)/service.md"
	@if [ -f "$(WEIGHTS)" ]; then \
	  echo "install -D -m 0644 $(WEIGHTS) $(DESTDIR)$(DATADIR)/default.safetensors"; \
	  install -D -m 0644 "$(WEIGHTS)" "$(DESTDIR)$(DATADIR)/default.safetensors"; \
	else echo "install: no $(WEIGHTS) in this tree: default weights not installed"; fi

## uninstall: removes what install put; the config only when it is still the unmodified example.
uninstall:
	rm -f "$(DESTDIR)$(BINDIR)/eartag" "$(DESTDIR)$(BINDIR)/eartag-train" "$(DESTDIR)$(UNITDIR)/eartag.service" \
	  "$(DESTDIR)$(DATADIR)/default.safetensors" "$(DESTDIR)$(DOCDIR)/service.md"
	@conf="$(DESTDIR)$(CONFDIR)/eartag.toml"; \
	if [ -e "$$conf" ]; then \
	  if sed $(CONF_SED) systemd/eartag.toml | cmp -s - "$$conf"; then echo "rm -f $$conf"; rm -f "$$conf"; \
	  else echo "uninstall: keeping $$conf (modified)"; fi; \
	fi
	@for d in "$(DESTDIR)$(DATADIR)" "$(DESTDIR)$(DOCDIR)" "$(DESTDIR)$(CONFDIR)"; do \
	  [ ! -d "$$d" ] || rmdir --ignore-fail-on-non-empty "$$d"; done

# Debian package: the binary links Swift's runtime statically, so the package needs no toolchain.
STATIC_SCRATCH := .build-static
STATIC_BIN := $(STATIC_SCRATCH)/release/eartag
VERSION_BASE := $(shell cat VERSION 2>/dev/null || echo 0.0.0)
GIT_STAMP := $(shell git log -1 --format=%cd.%h --date=format:%Y%m%d 2>/dev/null)
DEB_VERSION ?= $(VERSION_BASE)$(if $(GIT_STAMP),+git$(GIT_STAMP))
DEB_ARCH ?= $(shell dpkg --print-architecture 2>/dev/null)
DEB_MAINTAINER ?= EarTag maintainers <eartag@localhost>
DEB_STAGE := build/deb-root
DEB := build/eartag_$(DEB_VERSION)_$(DEB_ARCH).deb

## build-static: release binary with the Swift standard library and Foundation linked in (own scratch path).
# A package may be installed on another machine of its architecture: it targets the generic CPU unless DEB_CPU is
# set (e.g. DEB_CPU=cortex-a72 for a Raspberry Pi 4 image).
DEB_CPU ?=
build-static: deps
	$(SWIFT) build -c release $(if $(DEB_CPU),-Xswiftc -target-cpu -Xswiftc $(DEB_CPU)) --product eartag \
	  --static-swift-stdlib --scratch-path $(STATIC_SCRATCH)

## deb: build/eartag_<version>_<arch>.deb from a tree staged by `make install DESTDIR=... PREFIX=/usr`.
deb: build-static
	rm -rf "$(DEB_STAGE)" build/eartag_*.deb && mkdir -p "$(DEB_STAGE)/DEBIAN"
	$(MAKE) --no-print-directory install DESTDIR="$(abspath $(DEB_STAGE))" PREFIX=/usr INSTALL_BIN="$(STATIC_BIN)" \
	  INSTALL_TRAIN_BIN=
	strip --strip-unneeded "$(DEB_STAGE)/usr/bin/eartag"
	@if ldd "$(DEB_STAGE)/usr/bin/eartag" | grep -q '/opt/swift\|libswift\|not found'; then \
	  ldd "$(DEB_STAGE)/usr/bin/eartag" >&2; echo "deb: the binary still needs the Swift toolchain's libraries" >&2; exit 1; fi
	install -m 0755 packaging/deb/postinst packaging/deb/prerm packaging/deb/postrm "$(DEB_STAGE)/DEBIAN/"
	cd "$(DEB_STAGE)" && find etc -type f | sed 's|^|/|' | sort > DEBIAN/conffiles
	@depends=$$(packaging/deb/depends "$(DEB_STAGE)/usr/bin/eartag") || exit 1; \
	{ echo "Package: eartag"; \
	  echo "Version: $(DEB_VERSION)"; \
	  echo "Architecture: $(DEB_ARCH)"; \
	  echo "Maintainer: $(DEB_MAINTAINER)"; \
	  echo "Installed-Size: $$(du -sk --exclude=DEBIAN "$(DEB_STAGE)" | cut -f1)"; \
	  echo "Depends: $$depends"; \
	  echo "Section: sound"; \
	  echo "Priority: optional"; \
	  echo "Description: real-time sound tagger (EfficientAT MobileNetV3, 527 AudioSet classes)"; \
	  echo " EarTag listens to an ALSA device, standard input or a file and reports when sounds"; \
	  echo " start and stop. The package runs it as a sandboxed systemd service (eartag.service)"; \
	  echo " configured by /etc/eartag/eartag.toml."; \
	} > "$(DEB_STAGE)/DEBIAN/control"; cat "$(DEB_STAGE)/DEBIAN/control"
	dpkg-deb --build --root-owner-group "$(DEB_STAGE)" "$(DEB)"

## verify-unit: `systemd-analyze verify` and the exposure figure of the unit as `make install` writes it.
# verify needs ExecStart= to exist: the unit is installed into a temporary root whose path is the prefix.
verify-unit:
	@test -x "$(INSTALL_BIN)" || { echo "verify-unit: $(INSTALL_BIN) is missing: run 'make build' first" >&2; exit 1; }
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	$(MAKE) --no-print-directory -s install PREFIX="$$tmp/usr" UNITDIR="$$tmp/lib/systemd/system" CONFDIR="$$tmp/etc/eartag" >/dev/null && \
	echo "systemd-analyze verify $$tmp/lib/systemd/system/eartag.service" && \
	systemd-analyze verify "$$tmp/lib/systemd/system/eartag.service" && \
	systemd-analyze security --offline=true --threshold=20 --no-pager systemd/eartag.service | tail -1

## test-packaging: the service and packaging tests, including `make deb` (static build: minutes).
test-packaging: deps
	$(SWIFT) build $(TEST_FLAGS) --product eartag
	EARTAG_TEST_DEB=1 $(SWIFT) test $(TEST_FLAGS) --disable-swift-testing --filter EarTagCLITests.ServicePackagingTests

## clean-packaging: the static build and the package staging area (`clean` removes .build only).
clean-packaging:
	rm -rf build $(STATIC_SCRATCH)

## test-systemd: eartag.service under a real systemd (debootstrap'ed root cached in .build-systemd, the package from
# `make deb` installed in it, booted with systemd-nspawn; needs root). See docs/service.md.
test-systemd: deb
	systemd/test-real-systemd.sh $(DEB)

# ---------------------------------------------------------------------------------------------------------------
# Fuzzing (see docs/robustness.md). Not run by .ci/run: the corpora and found crashes are replayed by the tests.
# The library modules are built by SwiftPM with coverage instrumentation and ASan into $(FUZZ_SCRATCH); each target
# Fuzz/<name>.swift (an LLVMFuzzerTestOneInput) is then linked against their objects with libFuzzer's main.
FUZZ_SECONDS ?= 60
FUZZ_SCRATCH := .build-fuzz/spm
FUZZ_OUT := .build-fuzz/bin
FUZZ_TARGETS := checkpoint pickle safetensors npy labels listen_config pcm_stream teacher_store audio model_metadata engine
FUZZ_FLAGS := -sanitize=fuzzer,address
FUZZ_LIBS := -lsndfile -lvorbisfile -lsoxr -lasound -lfftw3f -lstdc++
FUZZ_OPTS := -rss_limit_mb=2048 -timeout=10 -max_len=65536 -print_final_stats=1

.PHONY: fuzz fuzz-build fuzz-libs fuzz-run-one

## fuzz-libs: the EarTag library modules, instrumented (SwiftPM, release, its own scratch folder).
fuzz-libs: deps
	$(SWIFT) build -c release --scratch-path $(FUZZ_SCRATCH) -Xswiftc -sanitize=fuzzer,address \
	  -Xswiftc -enable-testing --target EarTagPipeline
	$(SWIFT) build -c release --scratch-path $(FUZZ_SCRATCH) -Xswiftc -sanitize=fuzzer,address \
	  -Xswiftc -enable-testing --target EarTagTraining

## fuzz-build: every fuzz binary under $(FUZZ_OUT).
fuzz-build: fuzz-libs
	@mkdir -p $(FUZZ_OUT)
	@rel=$$($(SWIFT) build -c release --scratch-path $(FUZZ_SCRATCH) --show-bin-path) && \
	rm -rf .build-fuzz/objs && mkdir -p .build-fuzz/objs && \
	for m in EarTagPlatform EarTagModel EarTagEvents EarTagAudio EarTagFrontend EarTagEngine EarTagKernels EarTagPipeline EarTagTraining \
	        Atomics _AtomicsShims; do \
	  find $$rel/$$m.build -name '*.o' -print0 | while IFS= read -r -d '' o; do \
	    b=$$(basename "$$o"); ln -s "$$o" ".build-fuzz/objs/$$m-$${b//[^A-Za-z0-9_.-]/_}"; done; \
	done && objs=$$(ls .build-fuzz/objs/*.o) && \
	maps="" && for m in Sources/{CSndFile,CSoxr,CALSA,CFFTW,CVorbisFile}/module.modulemap \
	        $(FUZZ_SCRATCH)/checkouts/swift-atomics/Sources/_AtomicsShims/include/module.modulemap; do \
	  maps="$$maps -Xcc -fmodule-map-file=$$m"; done && \
	for t in $(FUZZ_TARGETS); do \
	  echo "fuzz-build: $(FUZZ_OUT)/$$t"; \
	  swiftc $(FUZZ_FLAGS) -O -parse-as-library -module-name Fuzz_$$t -I $$rel/Modules $$maps \
	    Fuzz/$$t.swift $$objs $(FUZZ_LIBS) -o $(FUZZ_OUT)/$$t 2>&1 | { grep -v 'Cannot export local symbol' || true; }; \
	  test $${PIPESTATUS[0]} -eq 0 || exit 1; \
	done

## fuzz: builds, then runs each target for FUZZ_SECONDS (default 60), one at a time.
fuzz: fuzz-build
	@for t in $(FUZZ_TARGETS); do $(MAKE) --no-print-directory fuzz-run-one T=$$t || exit 1; done

# One target: new corpus entries go to .build-fuzz/corpus/<t> (Fuzz/corpus/<t> stays as committed); crash files
# to .build-fuzz/artifacts/<t>/.
fuzz-run-one:
	@mkdir -p .build-fuzz/corpus/$(T) .build-fuzz/artifacts/$(T)
	@echo "=== fuzz $(T) for $(FUZZ_SECONDS) s"
	LSAN_OPTIONS=suppressions=$(CURDIR)/Fuzz/lsan-suppressions.txt $(FUZZ_OUT)/$(T) $(FUZZ_OPTS) $(FUZZ_OPTS_$(T)) -max_total_time=$(FUZZ_SECONDS) -artifact_prefix=.build-fuzz/artifacts/$(T)/ \
	  .build-fuzz/corpus/$(T) Fuzz/corpus/$(T) $(wildcard Fuzz/regressions/$(T))
