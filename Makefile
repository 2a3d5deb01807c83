# The one entry point for people and CI. `make help` lists the targets.

SHELL := /bin/bash
.DEFAULT_GOAL := help

NAME ?=
# One crate (`make test NAME=shared`) or the whole workspace.
CRATE_ARGS := $(if $(NAME),-p $(NAME),--workspace)
NEXTEST := $(shell cargo nextest --version >/dev/null 2>&1 && echo yes)

.PHONY: help setup test run lint fmt bench check-debug-code

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

setup: ## Install what the tests need on a fresh machine (redis-server, postgresql, mariadb-server, cargo-nextest, pre-commit)
	@scripts/setup.sh

test: ## Run the tests (NAME=<crate> for one crate), against real redis-server processes
ifeq ($(NEXTEST),yes)
	cargo nextest run $(CRATE_ARGS) --no-fail-fast
	cargo test $(CRATE_ARGS) --doc
else
	@echo "cargo-nextest not found (make setup installs it); using cargo test"
	cargo test $(CRATE_ARGS) --no-fail-fast
endif

run: ## Run a function locally: make run NAME=tebra_debug (uses REDIS_URL, else local Redis, else a throwaway one)
	@scripts/run.sh "$(NAME)"

lint: check-debug-code ## cargo fmt --check, clippy -D warnings, no debug code
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

fmt: ## Format the code
	cargo fmt --all

check-debug-code: ## No dbg!/todo!/println! outside tests
	@scripts/check-debug-code.sh

bench: ## Benchmarks: pool comparison and session backends (print tables, write bench-results/*.json)
	cargo build --release -p bench
	./target/release/pool
	./target/release/session_backends
