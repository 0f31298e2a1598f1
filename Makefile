# Every target here is also what CI runs (.ci/run calls `make test`): no step exists only in CI.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

# Test processes: most integration tests wait on real time (debounce, the 5/s rate limit, a
# lease running out), so more processes than the 2 cores here still shorten the run.
TEST_WORKERS ?= 4

.PHONY: install test test-fast lint format demo bench bench-quick clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

test: install  ## every test, fault scenarios included; prints the 25 slowest
	$(PY) -m pytest -n $(TEST_WORKERS) --maxschedchunk 1 --durations=25

test-fast: install  ## unit tests only: no worker processes
	$(PY) -m pytest -n 2 -m "not integration"

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

demo: install
	$(PY) ops/demo.py

BENCH_STAMP := $(VENV)/.bench-installed

$(BENCH_STAMP): $(STAMP) pyproject.toml
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)  ## every figure of docs/performance.md; writes bench-results.json and docs/perf/
	$(PY) -m ops.bench

bench-quick: $(BENCH_STAMP)  ## the same figures at a smaller scale, in a few minutes
	$(PY) -m ops.bench --quick

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info .demo
