# Thin targets: the work lives in the loadlab package and its tests.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install test lint demo screenshots e2e offline-images dashboards clean

$(BIN)/loadlab: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[all]'
	@touch $@

install: $(BIN)/loadlab

lint: install
	$(BIN)/ruff check src services locust tests benchmarks scripts
	$(BIN)/mypy

test: install lint
	$(BIN)/pytest

demo: install
	$(BIN)/loadlab run --target both --scenario io --users 50 --duration 20s --out results/demo

# The README's and docs' pictures of the report, from the demo and the quick matrix.
screenshots: demo
	$(BIN)/loadlab matrix matrices/quick.toml --out results/quick
	$(BIN)/python scripts/screenshots.py results/demo/report.html docs/report.png
	$(BIN)/python scripts/screenshots.py --section over-time --height 900 \
		results/demo/report.html docs/report-over-time.png
	$(BIN)/python scripts/screenshots.py --section distribution --height 900 \
		results/demo/report.html docs/report-distribution.png
	$(BIN)/python scripts/screenshots.py --height 1300 results/quick/report.html \
		docs/report-matrix.png

e2e: install
	$(BIN)/pytest -m docker tests/e2e

offline-images: install
	$(BIN)/python -m loadlab.offline

dashboards: install
	$(BIN)/loadlab dashboards

clean:
	rm -rf $(VENV) results .pytest_cache .mypy_cache .ruff_cache
