# Thin targets: the work lives in the loadlab package and its tests.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install test test-quick fresh-machine-test lint lock demo screenshots e2e swarm-e2e \
	offline-images arm64-images dashboards clean

# One line (and exit 2) when $(PY) is missing, too old, has no venv module, or when uv.lock
# no longer matches pyproject.toml; empty when all is well.
preflight = $(shell out=$$($(PY) scripts/preflight.py 2>&1 </dev/null); \
	if [ $$? -ne 0 ]; then case "$$out" in ("make install:"*) echo "$$out";; \
	(*) echo "make install: $(PY) does not run: install Python 3.11+ with its venv module";; \
	esac; fi)

# Pinned and hashed (requirements/all.txt, from uv.lock); the package itself on top.
$(BIN)/loadlab: pyproject.toml uv.lock requirements/all.txt
	$(eval why := $(preflight))$(if $(why),$(error $(why)))
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q --require-hashes -r requirements/all.txt
	$(BIN)/pip install -q --no-deps -e .
	@touch $@

install: $(BIN)/loadlab

# Resolve uv.lock again and rewrite requirements/*.txt from it (docs/install.md).
lock: install
	$(BIN)/python scripts/lock.py

SHELL_SCRIPTS := .ci/run .ci/engine.sh .ci/install-compose-v2 .ci/build-python-ft grafana/entrypoint.sh prometheus/entrypoint.sh \
	postgres/entrypoint.sh postgres/docker-entrypoint.sh deploy/kubernetes/prometheus/entrypoint.sh \
	src/loadlab/healthcheck.sh

lint: install
	$(BIN)/ruff check src services locust tests benchmarks scripts examples
	$(BIN)/mypy
	$(BIN)/hadolint --failure-threshold warning Dockerfile prometheus/Dockerfile.debian \
		postgres/Dockerfile.debian postgres/Dockerfile.exporter.debian
	$(BIN)/shellcheck $(SHELL_SCRIPTS)
	$(BIN)/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml

test: install lint
	$(BIN)/pytest $(PYTEST_ARGS)

# The edit-test loop (under 2 minutes on 2 cores): ruff, then every test but the long real runs (`slow`),
# Docker (`docker`, `swarm`) and Chromium (`browser`). `make test` remains the whole suite.
QUICK_MARKS := not slow and not docker and not browser and not swarm
test-quick: install
	$(BIN)/ruff check src services locust tests benchmarks scripts examples
	$(BIN)/pytest -m "$(QUICK_MARKS)" $(PYTEST_ARGS)

# A newcomer's machine: a clean Debian container (Python, make and git only) runs a fresh
# clone's `make test-quick`; every test whose system tool is missing must skip. Needs root,
# debootstrap and a Docker engine. FRESH_TARGET=test for the whole suite; PYTEST_ARGS
# (e.g. test files) is passed on to the make inside.
FRESH_TARGET ?= test-quick
fresh-machine-test:
	scripts/fresh_machine.sh $(FRESH_TARGET) HEAD $(if $(PYTEST_ARGS),"PYTEST_ARGS=$(PYTEST_ARGS)")

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

# A one-node swarm made and left by the test (refused on an engine already in a swarm).
swarm-e2e: install
	$(BIN)/pytest -m swarm tests/swarm

offline-images: install
	$(BIN)/python -m loadlab.offline

# The lab's own images for linux/arm64 on an amd64 machine, under qemu-user-static
# (docs/compose.md, "arm64"); far too slow for a test.
arm64-images: install
	$(BIN)/python -m loadlab.offline --arch arm64

dashboards: install
	$(BIN)/loadlab dashboards

clean:
	rm -rf $(VENV) results .pytest_cache .mypy_cache .ruff_cache
