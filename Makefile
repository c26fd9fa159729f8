# TwinOps: `make demo` runs the platform end to end on the sample author; `make test` runs CI's checks.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# CPU torch comes from a wheel on disk when the machine has one; nothing pulls CUDA packages.
WHEELS ?= /opt/wheels
FIND_LINKS := $(if $(wildcard $(WHEELS)/*.whl),--find-links $(WHEELS))
TORCH := torch==2.13.0
STAMP := $(VENV)/.setup-done
STACK_ENV := .twin/stack.env
DBT_MANIFEST := dbt/target/manifest.json
DBT_SOURCES := $(shell find dbt/models dbt/macros dbt/tests -type f 2>/dev/null) dbt/dbt_project.yml
PYTEST_ARGS ?=

.PHONY: help setup requirements dbt-parse lint format test test-ui demo dag up airflow status down clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-13s %s\n", $$1, $$2}'

setup: $(STAMP) $(DBT_MANIFEST) ## create .venv with the pinned set and the dbt manifest (idempotent)

$(STAMP): requirements.txt requirements-dev.txt requirements-nodeps.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@if $(BIN)/python -m pip install -q uv 2>/dev/null; then \
	  INSTALL="$(BIN)/uv pip install --system-certs --python $(BIN)/python $(FIND_LINKS)"; \
	  COMPILE=--compile-bytecode; \
	else \
	  echo "uv unavailable: installing with pip (slower)"; \
	  INSTALL="$(BIN)/python -m pip install -q $(FIND_LINKS)"; \
	  COMPILE=; \
	fi; \
	set -e; \
	echo "installing CPU torch"; $$INSTALL $$COMPILE $(TORCH); \
	echo "installing the pinned runtime and dev set (and compiling their bytecode)"; \
	DS_BUILD_OPS=0 $$INSTALL $$COMPILE -r requirements.txt -r requirements-dev.txt; \
	$$INSTALL $$COMPILE --no-deps -r requirements-nodeps.txt; \
	$$INSTALL --no-deps -e .
	@touch $(STAMP)
	@echo "environment ready in $(VENV)"

requirements: $(STAMP) ## re-pin requirements*.txt from requirements*.in
	$(BIN)/uv pip compile -q --system-certs --python $(BIN)/python --python-version 3.11 $(FIND_LINKS) \
	  requirements.in -o requirements.txt
	$(BIN)/uv pip compile -q --system-certs --python $(BIN)/python --python-version 3.11 $(FIND_LINKS) \
	  requirements-dev.in -o requirements-dev.txt
	$(BIN)/uv pip compile -q --system-certs --python $(BIN)/python --python-version 3.11 $(FIND_LINKS) \
	  requirements-gpu.in -o requirements-gpu.txt

dbt-parse: $(DBT_MANIFEST) ## dbt manifest the twin_warehouse DAG renders from (Cosmos)

# `dbt parse` (no database needed), the same command the Docker image runs.
$(DBT_MANIFEST): $(STAMP) $(DBT_SOURCES)
	@$(BIN)/python -m twin.warehouse.manifest

lint: $(STAMP) ## ruff (lint and format check), and the package's import contracts (lint-imports)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

format: $(STAMP) ## ruff: fix what can be fixed and format
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: lint $(DBT_MANIFEST) ## lint, then every test (starts its own stack on free ports)
	@$(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: that is a failure here"; exit 1; fi; \
	exit $$rc

test-ui: $(STAMP) ## browser tests of the Airflow UI (needs chromium: apt-get install -y chromium)
	@TWIN_UI_TESTS=1 $(BIN)/python -m pytest tests/e2e/test_airflow_ui.py -rs $(PYTEST_ARGS)

up: $(STAMP) ## start the embedded stack (.twin/), write .twin/stack.env
	$(BIN)/twin stack up

airflow: $(STAMP) ## start the stack and Airflow's UI (airflow standalone)
	$(BIN)/twin stack up --airflow

status: $(STAMP) ## each service, its URL and its health
	$(BIN)/twin stack status

down: $(STAMP) ## stop everything the stack started
	$(BIN)/twin stack down

# The demo's author is set, not assumed: every stage below reads TWIN_AUTHOR (set your own to build
# your twin; see the README's "Build a twin for yourself").
demo: export TWIN_AUTHOR ?= Ada Lindqvist
demo: $(STAMP) $(DBT_MANIFEST) ## set up, start the stack, run the platform on the sample author
	@echo "== the platform's author: $$TWIN_AUTHOR (TWIN_AUTHOR)"
	$(BIN)/twin stack up --sample
	@$(MAKE) --no-print-directory dag DAG=twin_healthcheck
	@$(BIN)/twin healthcheck
	@$(MAKE) --no-print-directory dag DAG=twin_crawl
	@$(BIN)/twin crawl-summary
	@$(MAKE) --no-print-directory dag DAG=twin_warehouse
	@$(BIN)/twin warehouse-summary
	@$(MAKE) --no-print-directory dag DAG=twin_features
	@echo '== twin search "how do you keep pipeline reruns safe?"'
	@$(BIN)/twin search "how do you keep pipeline reruns safe?" --k 3
	@# training datasets, then SmolLM2 fine-tuning (SFT then DPO, steps from twin_training's Params),
	@# registered in MLflow as the challenger with its evaluation verdict
	@$(MAKE) --no-print-directory dag DAG=twin_datasets
	@$(MAKE) --no-print-directory dag DAG=twin_training CONF='{"max_steps": 30, "dpo_max_steps": 8, "ranks": 2}'
	@$(BIN)/twin models list
	@# a reviewer's step: promotion needs review=approved (DEPLOY_REQUIRE_APPROVAL=false lifts it)
	@$(BIN)/twin models approve challenger --by "demo reviewer" \
	  --note "model card and evaluation table read; approved for a first deployment"
	@# first deployment: no champion yet, so the version answers the author's evaluation questions
	@# through twin_rag and is promoted only if those answers pass the floors; Triton serves it
	@$(MAKE) --no-print-directory dag DAG=twin_deploy
	@echo '== twin ask "What is the Tuesday test?" (HTTP, then gRPC)'
	@$(BIN)/twin ask "What is the Tuesday test?" --protocol http
	@$(BIN)/twin ask "What is the Tuesday test?" --protocol grpc
	@# a second candidate: the champion's SFT phase without DPO (reused, not retrained: the
	@# same dataset and SFT configuration), judged on shadow traffic beside the champion, so the
	@# comparison says whether DPO earned its place: promoted or rolled back
	@$(MAKE) --no-print-directory dag DAG=twin_training CONF='{"max_steps": 30, "dpo": false, "ranks": 2}'
	@$(BIN)/twin models approve challenger --by "demo reviewer" \
	  --note "SFT-only candidate approved for a shadow comparison with the champion"
	@$(MAKE) --no-print-directory dag DAG=twin_deploy CONF='{"min_samples": 12}'
	@$(BIN)/twin deployments
	@$(BIN)/twin stack status
	@echo "Airflow UI: make airflow (then open AIRFLOW_UI_URL from $(STACK_ENV))"

dag: $(STAMP) ## run one DAG with `airflow dags test` (DAG=twin_crawl [CONF='{"k": v}']); log in .twin/logs/
	@test -n "$(DAG)" || { echo "usage: make dag DAG=<dag_id>"; exit 2; }
	@echo "== $(DAG) (airflow dags test, log: .twin/logs/dag-$(DAG).log)"
	@set -a; . $(STACK_ENV); set +a; \
	$(BIN)/airflow dags test $(DAG) $(if $(CONF),--conf '$(CONF)') > .twin/logs/dag-$(DAG).log 2>&1 \
	  || { tail -60 .twin/logs/dag-$(DAG).log; echo "$(DAG) failed"; exit 1; }; \
	grep -E "DagRun Finished" .twin/logs/dag-$(DAG).log | sed -E 's/.*(dag_id=[^,]*).*(state=[a-z]*).*/   \1 \2/' 

clean: down ## stop the stack and delete its data (.twin/)
	rm -rf .twin
