# Thin wrapper over CMake. `make run` and `make test` are the README's two commands:
# on a fresh Debian 12 machine they install what is missing (scripts/bootstrap) first.
BUILD      ?= build
ASAN_BUILD ?= build-asan
WOLF_BUILD ?= build-wolfssl
JOBS       ?= $(shell nproc)
CMAKE_GEN  := $(shell command -v ninja >/dev/null 2>&1 && echo "-G Ninja")

.PHONY: all bootstrap detour run test test-release test-clock test-asan test-wolfssl test-format \
        fuzz bench deb \
        format clean

all: detour

bootstrap:
	@./scripts/bootstrap

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=RelWithDebInfo

detour: bootstrap $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

# Serves examples/rules.txt on 127.0.0.1:8307 until interrupted.
run: detour
	$(BUILD)/detour serve --rules examples/rules.txt

$(ASAN_BUILD)/CMakeCache.txt:
	cmake -S . -B $(ASAN_BUILD) $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=Debug -DDETOUR_SANITIZE=ON \
	      -DDETOUR_FUZZ=ON -DCMAKE_C_COMPILER=clang

test-release: detour
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) --timeout 300

test-asan: bootstrap $(ASAN_BUILD)/CMakeCache.txt
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	    ctest --output-on-failure -j $(JOBS) --timeout 300

# The other TLS library (docs/tls-library.md): the wolfSSL build of the server, its TLS unit
# test and the HTTP/2 suite (over TLS and not), so that it keeps working.
$(WOLF_BUILD)/CMakeCache.txt:
	cmake -S . -B $(WOLF_BUILD) $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDETOUR_TLS=wolfssl

test-wolfssl: bootstrap $(WOLF_BUILD)/CMakeCache.txt
	cmake --build $(WOLF_BUILD) -j $(JOBS) --target detour unit_tls
	cd $(WOLF_BUILD) && ctest --output-on-failure --timeout 300 -R 'unit_tls|integ_test_h2'

# The release suite again with the wall clock two years ahead and one year back
# (libfaketime): no test may depend on today's date, and no code on the clock where its
# caller passes a time. (libfaketime moves the monotonic clock by the same offset, which
# changes no duration; FAKETIME_DONT_FAKE_MONOTONIC=1 would make Python's sleeps fail with
# EINVAL.)
CLOCK_SHIFTS ?= +2y -1y
test-clock: detour
	@for shift in $(CLOCK_SHIFTS); do \
	    echo "== the release suite with the clock moved $$shift"; \
	    (cd $(BUILD) && faketime -f "$$shift" \
	        ctest --output-on-failure -j $(JOBS) --timeout 300) || exit 1; \
	done

# Every C file as the repository's .clang-format writes it (`make format` fixes them).
C_FILES = $(shell find src include tests fuzz bench -name '*.[ch]')
test-format: bootstrap
	@clang-format --dry-run --Werror $(C_FILES) && \
	    echo "format: $(words $(C_FILES)) C files as .clang-format writes them"

# The format, every test, the release suite with the clock moved, then every test under
# ASan+UBSan (which also replays the fuzz corpora).
test: test-format test-release test-clock test-asan test-wolfssl

# Runs each libFuzzer target for FUZZ_SECONDS (default 60), growing its corpus.
FUZZ_SECONDS ?= 60
fuzz: bootstrap $(ASAN_BUILD)/CMakeCache.txt
	cmake --build $(ASAN_BUILD) -j $(JOBS) --target fuzz_request fuzz_rules fuzz_url fuzz_bulk \
	    fuzz_h2 fuzz_hello fuzz_tls13 fuzz_import fuzz_proxy fuzz_answer fuzz_admin fuzz_acme
	$(ASAN_BUILD)/fuzz/fuzz_request -max_total_time=$(FUZZ_SECONDS) -dict=fuzz/http.dict fuzz/corpus/request
	$(ASAN_BUILD)/fuzz/fuzz_rules -max_total_time=$(FUZZ_SECONDS) fuzz/corpus/rules
	$(ASAN_BUILD)/fuzz/fuzz_url -max_total_time=$(FUZZ_SECONDS) fuzz/corpus/url
	$(ASAN_BUILD)/fuzz/fuzz_bulk -max_total_time=$(FUZZ_SECONDS) fuzz/corpus/bulk
	$(ASAN_BUILD)/fuzz/fuzz_h2 -max_total_time=$(FUZZ_SECONDS) fuzz/corpus/h2
	$(ASAN_BUILD)/fuzz/fuzz_hello -max_total_time=$(FUZZ_SECONDS) fuzz/corpus/hello
	$(ASAN_BUILD)/fuzz/fuzz_tls13 -max_total_time=$(FUZZ_SECONDS) fuzz/corpus/tls13
	$(ASAN_BUILD)/fuzz/fuzz_import -max_total_time=$(FUZZ_SECONDS) fuzz/corpus/import
	$(ASAN_BUILD)/fuzz/fuzz_proxy -max_total_time=$(FUZZ_SECONDS) fuzz/corpus/proxy
	$(ASAN_BUILD)/fuzz/fuzz_answer -max_total_time=$(FUZZ_SECONDS) -dict=fuzz/http.dict fuzz/corpus/answer
	$(ASAN_BUILD)/fuzz/fuzz_admin -max_total_time=$(FUZZ_SECONDS) fuzz/corpus/admin
	$(ASAN_BUILD)/fuzz/fuzz_acme -max_total_time=$(FUZZ_SECONDS) fuzz/corpus/acme

# The Debian package (docs/operations.md): detour built again with Debian's hardening
# flags (dpkg-buildflags) in $(DEB_BUILD), then packaged by scripts/mkdeb into
# $(DEB_BUILD)/detour_VERSION_ARCH.deb. DEB_VERSION overrides the version.
DEB_BUILD ?= $(BUILD)/deb
DEB_FLAGS = DEB_BUILD_MAINT_OPTIONS=hardening=+all dpkg-buildflags --get
$(DEB_BUILD)/CMakeCache.txt:
	CFLAGS="$$($(DEB_FLAGS) CFLAGS) $$($(DEB_FLAGS) CPPFLAGS)" LDFLAGS="$$($(DEB_FLAGS) LDFLAGS)" \
	    cmake -S . -B $(DEB_BUILD) $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=RelWithDebInfo

deb: bootstrap $(DEB_BUILD)/CMakeCache.txt
	cmake --build $(DEB_BUILD) -j $(JOBS) --target detour
	./scripts/mkdeb -o $(DEB_BUILD) $(if $(DEB_VERSION),-v $(DEB_VERSION)) $(DEB_BUILD)/detour

bench: detour
	DETOUR_BOOTSTRAP_BENCH=1 ./scripts/bootstrap
	./bench/run
	./bench/tls

format:
	clang-format -i $(C_FILES)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(WOLF_BUILD)
