# One task runner: CI (.ci/run) calls `make test`, the README's test command.
.PHONY: test tools fmt fmt-check lint unit k8s twin kafka example bench stress

CARGO ?= cargo
PROFILE ?= ci

## Install test tools, then check formatting, lints, every test, and the Kubernetes artefacts.
test: tools fmt-check lint unit k8s twin

tools:
	bash scripts/install-test-tools.sh

fmt:
	$(CARGO) fmt --all

fmt-check:
	$(CARGO) fmt --all -- --check

lint:
	$(CARGO) clippy --workspace --all-targets --profile $(PROFILE) -- -D warnings

unit:
	$(CARGO) test --workspace --profile $(PROFILE)

k8s:
	CARGO_PROFILE=$(PROFILE) bash scripts/k8s-checks.sh

TARGET_DIR ?= $(or $(CARGO_TARGET_DIR),target)
TOOLS_DIR ?= $(or $(NEPTUNE_TOOLS_DIR),.tools)

## End-to-end scenarios on the cluster twin (no Docker, no cluster): the real operator, kubectl
## and neptune processes; writes target/twin-report.json.
# Scenarios left out of `make twin` (comma-separated names) because of a known operator or engine
# bug, each with its reason in a comment here; `make twin TWIN_KNOWN_FAILURES=` runs them all.
# Empty: every scenario passes on the twin.
TWIN_KNOWN_FAILURES ?=

twin:
	@echo "make twin: known failures left out: $(or $(TWIN_KNOWN_FAILURES),none)"
	bash scripts/k8s-tools.sh >/dev/null
	bash scripts/install-test-tools.sh >/dev/null
	$(CARGO) build --profile $(PROFILE) -p neptune -p neptune-operator -p neptune-twin -p neptune-e2e
	$(TARGET_DIR)/$(PROFILE)/neptune-e2e twin --bin-dir $(TARGET_DIR)/$(PROFILE) \
		--kubectl $(TOOLS_DIR)/bin/kubectl --report target/twin-report.json \
		--skip "$(TWIN_KNOWN_FAILURES)"

## The Kafka source and sink on a real Kafka-protocol broker (tansu, built once into .tools/bin: slow, so
## not in `make test` yet; see neptune/tests/kafka/).
kafka:
	bash scripts/kafka-broker.sh
	$(CARGO) test --profile $(PROFILE) -p neptune --test kafka -- --ignored

## The main example on a local cluster.
example:
	$(CARGO) run --release -- local --app fraud-detection --duration 30s

bench:
	$(CARGO) bench -p neptune-executor
