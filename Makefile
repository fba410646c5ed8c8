# Thin targets: the work lives in the loadlab package and its tests.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install test lint demo e2e swarm-e2e offline-images dashboards clean

$(BIN)/loadlab: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[all]'
	@touch $@

install: $(BIN)/loadlab

lint: install
	$(BIN)/ruff check src services locust tests benchmarks
	$(BIN)/mypy

test: install lint
	$(BIN)/pytest

demo: install
	$(BIN)/loadlab run --target both --scenario io --users 50 --duration 20s --out results/demo

e2e: install
	$(BIN)/pytest -m docker tests/e2e

# A one-node swarm made and left by the test (refused on an engine already in a swarm).
swarm-e2e: install
	$(BIN)/pytest -m swarm tests/swarm

offline-images: install
	$(BIN)/python -m loadlab.offline

dashboards: install
	$(BIN)/loadlab dashboards

clean:
	rm -rf $(VENV) results .pytest_cache .mypy_cache .ruff_cache
