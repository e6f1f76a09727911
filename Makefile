# servingbench: every target bootstraps what it needs; a fresh clone needs only python3 and make.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
UV_VERSION ?= 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
UV_RUN := $(UV) run --frozen --no-sync
SB := $(UV_RUN) servingbench

# Pass-through knobs (see docs/): DOCKER=1 uses docker compose for serve-all/stop-all.
DOCKER ?=
RUN_ID ?=
RUN ?=
BASELINE ?=
ARGS ?=
TRAIN_ARGS ?=

.PHONY: help setup train serve-all stop-all status parity bench calibrate report notebook docs lint format test compose-up compose-down clean

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(UV):
	@echo "bootstrapping uv $(UV_VERSION) into $(TOOLS)/"
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

# Each backend server runs from its own locked environment (backends/<name>/uv.lock), so its
# pins never move the harness's or another server's versions.
BACKEND_ENVS := $(patsubst %/pyproject.toml,%/.venv/.synced,$(wildcard backends/*/pyproject.toml))

$(VENV)/.synced: $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen
	@touch $@

backends/%/.venv/.synced: $(UV) backends/%/pyproject.toml backends/%/uv.lock pyproject.toml
	$(UV) sync --frozen --project backends/$*
	@touch $@

setup: $(VENV)/.synced $(BACKEND_ENVS) ## build the harness's and every backend's environment from their uv.lock

train: $(VENV)/.synced ## train the models into model-settings/ (skipped when up to date; TRAIN_ARGS=--force)
	$(SB) train $(TRAIN_ARGS)

serve-all: train $(BACKEND_ENVS) ## start every registered backend's server on its default ports (ARGS=--help lists them)
ifeq ($(DOCKER),1)
	docker compose up -d --build --wait
else
	$(SB) serve-all $(ARGS)
endif

stop-all: ## stop what serve-all started
ifeq ($(DOCKER),1)
	docker compose down
else
	@if [ -x $(VENV)/bin/servingbench ]; then $(SB) stop-all; else echo "nothing to stop (no virtualenv yet)"; fi
endif

status: $(VENV)/.synced ## show what serve-all started and whether it is ready
	$(SB) status

compose-up: train ## the same servers under docker compose (needs a Docker engine)
	docker compose up -d --build --wait

compose-down: ## stop the docker compose stack
	docker compose down

parity: $(VENV)/.synced ## same held-out rows to every endpoint; fail on any mismatch
	$(SB) parity $(ARGS)

bench: train $(BACKEND_ENVS) ## the whole benchmark: serve-all, parity, the sweep, stop-all, summary
	$(SB) bench $(ARGS)

calibrate: train ## measure the load generator's own ceiling and added latency
	$(SB) calibrate $(ARGS)

report: $(VENV)/.synced ## tables and plots for the latest run (RUN=<run-id>, BASELINE=<run-id>)
	$(SB) report $(if $(RUN),--run $(RUN)) $(if $(BASELINE),--baseline $(BASELINE)) $(ARGS)

notebook: $(VENV)/.synced ## open notebooks/ in JupyterLab (SERVINGBENCH_RUN=<run-id> picks a run)
	$(UV_RUN) jupyter lab notebooks/

docs: $(VENV)/.synced ## build the documentation (docs/, mkdocs.yml) into site/; a warning fails it
	NO_MKDOCS_2_WARNING=1 $(UV_RUN) mkdocs build --strict

lint: $(VENV)/.synced ## ruff (lint + format check) and mypy
	$(UV_RUN) ruff check src tests loadtests backends
	$(UV_RUN) ruff format --check src tests loadtests backends
	$(UV_RUN) mypy

format: $(VENV)/.synced ## apply ruff's formatting and fixes
	$(UV_RUN) ruff check --fix src tests loadtests backends
	$(UV_RUN) ruff format src tests loadtests backends

test: train $(BACKEND_ENVS) ## unit and integration tests (real servers on free loopback ports)
	$(UV_RUN) pytest $(ARGS)

clean: stop-all ## remove the environment, artifacts and server state (keeps results/)
	rm -rf $(VENV) $(TOOLS) backends/*/.venv .run .mypy_cache .ruff_cache .pytest_cache site
	rm -f model-settings/*/model.* model-settings/*/metadata.json
