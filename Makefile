# HeyDoc's everyday commands. `make` alone lists them.
#   make run     the embedded default: one process, SQLite under ./data, nothing else to install
#   make test    everything CI runs: brings up PostgreSQL if needed, unit + integration tests on
#                PostgreSQL and SQLite, then Schemathesis against the live OpenAPI document
#   make lint    rustfmt check and clippy with warnings as errors
#   make bench   benchmarks on PostgreSQL; prints figures next to the same run's ceilings

CARGO ?= cargo
export RUST_BACKTRACE ?= 1
# Wherever cargo builds (CARGO_TARGET_DIR, a shared target directory): asked, never assumed.
TARGET_DIR = $(shell CARGO=$(CARGO) bash deploy/dev/target-dir.sh)

.DEFAULT_GOAL := help
.PHONY: help run build test unit-test schemathesis generated-client services lint fmt bench migrate clean-test-dbs k8s-check

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  make %-16s %s\n", $$1, $$2}'

run: ## Run everything in one process on SQLite (http://127.0.0.1:8080)
	$(CARGO) run -p heydoc -- all

build: ## Build every crate and test (debug)
	$(CARGO) build --workspace --all-targets

services: ## Start (or install) PostgreSQL for the tests when it is not answering
	@bash deploy/dev/ensure-services.sh

# How schemathesis and generated-client get the heydoc binary. `make test` gives them the one its
# integration tests just built (`cargo build -p heydoc` alone resolves other features and
# builds everything again, a minute of CI).
HEYDOC_BUILD ?= $(CARGO) build -p heydoc

# The suite in two halves (.config/nextest.toml): every untimed test, many at once, then the tests
# that measure real time (a pace, a lateness) one at a time with nothing else running.
test: services ## Unit and integration tests on PostgreSQL and SQLite, Schemathesis, a generated client, k8s-check
	$(CARGO) nextest run --workspace --profile untimed
	$(CARGO) nextest run --workspace --profile timed
	$(MAKE) --no-print-directory schemathesis HEYDOC_BUILD=:
	$(MAKE) --no-print-directory generated-client HEYDOC_BUILD=:
	$(MAKE) --no-print-directory k8s-check

unit-test: ## Only the tests that need no server
	$(CARGO) nextest run --workspace --lib --profile untimed

schemathesis: ## Fuzz the running gateway against its own /openapi.json
	$(HEYDOC_BUILD)
	bash deploy/dev/schemathesis.sh

generated-client: ## Generate a Python client from the live /openapi.json and run the README's flow with it
	$(HEYDOC_BUILD)
	bash deploy/dev/generated-client.sh

k8s-check: ## Render k8s/ with kustomize and validate every manifest offline (schemas, rules, self-test)
	bash deploy/dev/k8s-check.sh

lint: ## rustfmt check and clippy, warnings as errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt: ## Format the code
	$(CARGO) fmt --all

bench: services ## Benchmarks (release build): gateway reads, 100k sends, paced sends on 4 numbers, 1M fan-out, firing lateness, imports, real operations
	$(CARGO) build --release -p heydoc -p heydoc-e2e
	$(TARGET_DIR)/release/bench-gateway
	HEYDOC_BIN=$(TARGET_DIR)/release/heydoc $(TARGET_DIR)/release/bench-sender
	HEYDOC_BIN=$(TARGET_DIR)/release/heydoc $(TARGET_DIR)/release/bench-paced
	$(TARGET_DIR)/release/bench-scheduler
	HEYDOC_BIN=$(TARGET_DIR)/release/heydoc $(TARGET_DIR)/release/bench-import
	HEYDOC_BIN=$(TARGET_DIR)/release/heydoc $(TARGET_DIR)/release/bench-operations

migrate: ## Bring the configured database's schema up to date
	$(CARGO) run -p heydoc -- migrate

clean-test-dbs: ## Drop test databases a killed test run left behind
	psql "$${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}" -qAt \
	  -c "SELECT 'DROP DATABASE ' || datname || ' WITH (FORCE);' FROM pg_database WHERE datname LIKE 'heydoc_test_%' OR datname LIKE 'heydoc_schemathesis_%'" \
	  | psql "$${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}" -q
