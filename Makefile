# The two commands of tunerd:  make run   and   make test
# Both install what is missing (Debian packages, see scripts/install-deps), build, and go.
JOBS      ?= $(shell nproc 2>/dev/null || echo 2)
BUILD_DIR ?= build
ASAN_DIR  ?= build-asan
FUZZ_DIR  ?= build-fuzz
FUZZ_SECONDS ?= 120
FUZZ_TARGETS ?= $(patsubst tests/fuzz/%_fuzz.cpp,%,$(wildcard tests/fuzz/*_fuzz.cpp))
CONFIG    ?= etc/tunerd.toml
CMAKE_ARGS ?=

.PHONY: all deps test-deps configure build run test test-asan fuzz bench bench-front bench-peers format clean

all: build

deps:
	@scripts/install-deps

test-deps:
	@scripts/install-deps --test

$(BUILD_DIR)/CMakeCache.txt:
	cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=Release $(CMAKE_ARGS)

configure: $(BUILD_DIR)/CMakeCache.txt

build: deps configure
	cmake --build $(BUILD_DIR) -j $(JOBS)

# Starts tunerd in the foreground with the built-in demo app: public 127.0.0.1:8080,
# admin 127.0.0.1:9464. Ctrl-C drains and stops it. Builds only tunerd and tunerctl (the tests
# and benchmarks are built by make test and make bench).
run: deps configure
	cmake --build $(BUILD_DIR) -j $(JOBS) --target tunerd tunerctl
	$(BUILD_DIR)/tuner/tunerd --config $(CONFIG)

# Every test: unit suites in parallel, integration suites (RUN_SERIAL) one at a time.
test: test-deps configure
	cmake --build $(BUILD_DIR) -j $(JOBS)
	cd $(BUILD_DIR) && ctest --output-on-failure --timeout 900 -j $(JOBS)

test-asan: test-deps
	cmake -S . -B $(ASAN_DIR) -DCMAKE_BUILD_TYPE=Debug -DTUNER_SANITIZE=address,undefined \
	      -DTUNER_BUILD_BENCH=OFF $(CMAKE_ARGS)
	cmake --build $(ASAN_DIR) -j $(JOBS)
	cd $(ASAN_DIR) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	    ctest --output-on-failure --timeout 1800 -j $(JOBS)

# The fuzz targets of tests/fuzz under libFuzzer, ASan and UBSan (clang), FUZZ_SECONDS each, one
# after the other (FUZZ_TARGETS="config probe_cpu" picks some). The checked-in corpus is only
# read: new inputs go to $(FUZZ_DIR)/corpus/<target>, a crash's input to
# $(FUZZ_DIR)/crashes/<target>/, and a crash stops here with an error (docs/security.md).
fuzz:
	@scripts/install-deps --fuzz
	cmake -S . -B $(FUZZ_DIR) -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	      -DTUNER_FUZZ=ON -DTUNER_BUILD_TESTS=OFF -DTUNER_BUILD_BENCH=OFF $(CMAKE_ARGS)
	cmake --build $(FUZZ_DIR) -j $(JOBS) --target $(addprefix fuzz_,$(FUZZ_TARGETS))
	@mkdir -p $(FUZZ_DIR)/tmp
	@for t in $(FUZZ_TARGETS); do \
	    mkdir -p $(FUZZ_DIR)/corpus/$$t $(FUZZ_DIR)/crashes/$$t; \
	    dict=; [ -f tests/fuzz/dict/$$t.dict ] && dict=-dict=tests/fuzz/dict/$$t.dict; \
	    echo "fuzz: $$t for $(FUZZ_SECONDS) s"; \
	    TMPDIR=$(abspath $(FUZZ_DIR))/tmp \
	    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	    $(FUZZ_DIR)/tests/fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -timeout=10 \
	        -max_len=8192 -rss_limit_mb=2048 -print_final_stats=1 $$dict \
	        -artifact_prefix=$(FUZZ_DIR)/crashes/$$t/ \
	        $(FUZZ_DIR)/corpus/$$t tests/fuzz/corpus/$$t || exit 1; \
	done

# The Google Benchmark programs, then the front against nginx (bench-front).
bench: build bench-front
	scripts/run-benchmarks

# tunerd's front against nginx and against no front, in front of the demo worker and gunicorn
# hello-world (docs/benchmarks.md, "Front"): about 6 minutes. Results in bench/front/results.
bench-front: build
	@scripts/install-deps --bench
	bench/front/run.py --build $(BUILD_DIR)

# tunerd against gunicorn and uWSGI on examples/flask, every scenario of docs/benchmarks.md
# ("Peers"): about 45 minutes on 2 cores, root for the cgroups. Results in bench/peers/results,
# plots in docs/img.
bench-peers: build
	@scripts/install-deps --bench
	bench/peers/run.py --build $(BUILD_DIR)

format:
	git ls-files '*.cpp' '*.hpp' | xargs clang-format -i

clean:
	rm -rf $(BUILD_DIR) $(ASAN_DIR) $(FUZZ_DIR)
