# One task runner: CI (.ci/run) calls `make test`, the README's test command.
.PHONY: test tools fmt fmt-check lint unit k8s example bench stress

CARGO ?= cargo
PROFILE ?= ci

## Install test tools, then check formatting, lints, every test, and the Kubernetes artefacts.
test: tools fmt-check lint unit k8s

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

## The main example on a local cluster.
example:
	$(CARGO) run --release -- local --app fraud-detection --duration 30s

bench:
	$(CARGO) bench -p neptune-executor
