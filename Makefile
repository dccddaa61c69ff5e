# One task runner: CI (.ci/run) calls `make test`, the README's test command.
.PHONY: test tools nextest fmt fmt-check lint build unit slowest k8s twin kafka example bench stress proto

CARGO ?= cargo
PROFILE ?= ci
TARGET_DIR ?= $(or $(CARGO_TARGET_DIR),target)
TOOLS_DIR ?= $(or $(NEPTUNE_TOOLS_DIR),.tools)
NEXTEST ?= $(TOOLS_DIR)/bin/cargo-nextest nextest

# `make test` compiles the workspace once, for lints and tests together (docs/development.md has
# the measurements behind each choice):
# - `build` compiles every target with clippy as the rustc of the workspace's own crates
#   (RUSTC_WORKSPACE_WRAPPER=clippy-driver, what `cargo clippy` does in a check build), so the
#   lints of `cargo clippy --all-targets -- -D warnings` run while the test build compiles, and
#   the dependencies are compiled once (before: once checked by clippy, once built by the tests).
#   Every cargo command of `make test` uses the same LINTED environment, as it is part of the
#   workspace crates' fingerprints: a command without it would compile them again.
# - `unit` runs the tests with cargo-nextest, several at once (most multi-process tests wait on
#   heartbeats and intervals); .config/nextest.toml keeps the CPU-heavy ones one at a time.
# - `k8s`, `twin` and `kafka` use the binaries of that build: nothing is compiled after `build`.
#   They run beside `unit` (make -j4; --output-sync keeps each one's log in one piece): each
#   leaves the CPUs idle at times (the twin waits on reconciles, the tests' tail on one long
#   test), so `unit`, `k8s` and `twin` together took 257 s against 287 s one after another
#   (measured).
# - The Kafka tests' broker (tansu) is built once per machine, into a cache outside the clone
#   (scripts/kafka-broker.sh): on a machine without it, `make test` starts that build first, at
#   the lowest priority, beside everything else, and `kafka` waits for it.
# `make lint` stays the developers' quick clippy check.
LINTED := RUSTC_WORKSPACE_WRAPPER=clippy-driver CLIPPY_ARGS=-Dwarnings
# Cargo under `make -j` sees make's jobserver in MAKEFLAGS but not its descriptors (only
# recursive `$(MAKE)` lines get them) and warns; it uses its own job count instead.
NOJOBSERVER := MAKEFLAGS=
# `unit`, `k8s` and `twin` build first, unless `make test` has just done so (BUILT=1: no second
# cargo run, whose --timings report would replace the build's).
BUILD := $(if $(BUILT),,build)

## Install test tools, then check formatting, lints, every test, and the Kubernetes artefacts.
# The tool installs (downloads, ~20 s on a fresh clone) run while the workspace compiles.
test: fmt-check
	@mkdir -p $(TARGET_DIR)
	@nice -n 19 bash scripts/kafka-broker.sh > $(TARGET_DIR)/kafka-broker.log 2>&1 & \
	  $(MAKE) --no-print-directory tools > $(TARGET_DIR)/tools.log 2>&1 & tools=$$!; \
	  $(MAKE) --no-print-directory build; built=$$?; \
	  wait $$tools; installed=$$?; cat $(TARGET_DIR)/tools.log; \
	  [ $$installed = 0 ] || echo "make test: installing the test tools failed (above)"; \
	  [ $$built = 0 ] && [ $$installed = 0 ]
	$(MAKE) --no-print-directory -j4 --output-sync=target unit k8s twin kafka BUILT=1
	@$(MAKE) --no-print-directory slowest

tools:
	bash scripts/install-test-tools.sh

$(TOOLS_DIR)/bin/cargo-nextest nextest:
	bash scripts/install-nextest.sh

fmt:
	$(CARGO) fmt --all

fmt-check:
	$(CARGO) fmt --all -- --check

lint:
	$(CARGO) clippy --workspace --all-targets --profile $(PROFILE) -- -D warnings

## Compile every target (libs, bins, tests, benches, examples), linting the workspace's crates;
## where the time went: target/cargo-timings/cargo-timing.html.
build:
	$(LINTED) $(CARGO) build --workspace --all-targets --profile $(PROFILE) --timings

## Every test: nextest for the test binaries (.config/nextest.toml), cargo for the doc-tests.
unit: $(BUILD) $(TOOLS_DIR)/bin/cargo-nextest
	$(NOJOBSERVER) $(LINTED) $(NEXTEST) run --workspace --cargo-profile $(PROFILE) --profile ci
	$(NOJOBSERVER) $(LINTED) $(CARGO) test --doc --workspace --profile $(PROFILE)

## The 10 slowest tests of the last `make unit` (nextest's store is target/nextest whatever the
## target directory: .config/nextest.toml).
slowest:
	@python3 scripts/slowest-tests.py target/nextest/ci/junit.xml 10

k8s: $(BUILD)
	CARGO_PROFILE=$(PROFILE) CRDGEN=$(TARGET_DIR)/$(PROFILE)/crdgen bash scripts/k8s-checks.sh

## End-to-end scenarios on the cluster twin (no Docker, no cluster): the real operator, kubectl
## and neptune processes; writes target/twin-report.json.
# Scenarios left out of `make twin` (comma-separated names) because of a known operator or engine
# bug, each with its reason in a comment here; `make twin TWIN_KNOWN_FAILURES=` runs them all.
# Empty: every scenario passes on the twin.
TWIN_KNOWN_FAILURES ?=

# Its binaries come from `build` (the test build's features and profile), so `make test` compiles
# them once.
twin: $(BUILD)
	@echo "make twin: known failures left out: $(or $(TWIN_KNOWN_FAILURES),none)"
	bash scripts/k8s-tools.sh >/dev/null
	bash scripts/install-test-tools.sh >/dev/null
	$(TARGET_DIR)/$(PROFILE)/neptune-e2e twin --bin-dir $(TARGET_DIR)/$(PROFILE) \
		--kubectl $(TOOLS_DIR)/bin/kubectl --report target/twin-report.json \
		--skip "$(TWIN_KNOWN_FAILURES)"

## The Kafka source and sink on a real Kafka-protocol broker (tansu, built once per machine by
## scripts/kafka-broker.sh, ~11 min; see neptune/tests/integration/kafka/). They are `#[ignore]`d
## in `unit`'s run and run here. `--workspace`, not `-p neptune`: the same package selection as
## `build`, so the features match and nothing is compiled again.
kafka: $(BUILD)
	bash scripts/kafka-broker.sh
	$(NOJOBSERVER) $(LINTED) $(CARGO) test --workspace --profile $(PROFILE) --test integration -- --ignored kafka::

## Regenerate proto/src/v2.rs after editing proto/proto/neptune.proto (protox and tonic-prost-build,
## built outside the workspace: `make test` never compiles them; a test checks the file is current).
proto:
	$(CARGO) run --quiet --manifest-path proto/gen/Cargo.toml

## The main example on a local cluster.
example:
	$(CARGO) run --release -- local --app fraud-detection --duration 30s

bench:
	$(CARGO) bench -p neptune-executor
