# Every target sets itself up on a fresh machine with Python 3.11: a virtual environment
# in .venv with the locked dependencies installed by uv.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
UV_VERSION := 0.13.8
STAMP := $(VENV)/.installed

.PHONY: venv test demo sandbox bench simulate lint clean

venv: $(STAMP)

$(STAMP): requirements.lock requirements-dev.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip --version >/dev/null 2>&1 || $(PY) -m ensurepip --upgrade >/dev/null
	$(PY) -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(PY) -m uv pip install --quiet --python $(PY) -r requirements.lock -r requirements-dev.lock
	touch $(STAMP)

test: venv
	$(PY) -m pytest $(PYTEST_ARGS)

lint: venv
	$(PY) -m ruff check dags plugins include tests bench
	$(PY) -m ruff format --check dags plugins include tests bench

# Seeds a sandbox org on first use (kept in .sandbox-data; DEMO_ARGS=--reset starts over),
# runs the DAG for yesterday, prints the run summary and, last, the report's path.
demo: venv
	$(PY) -m include.sandbox.demo $(DEMO_ARGS)

clean:
	rm -rf $(VENV) .sandbox-data .airflow reports

.PHONY: validate-deployment

# Compose schema, hadolint and path checks of the deployment files; needs no Docker engine.
validate-deployment: venv
	$(PY) .ci/validate-deployment

# Both sandbox servers in the foreground (Salesforce on 8701, Cerkl on 8702, data in
# .sandbox-data); pass more options with SANDBOX_ARGS="--seed-if-empty --contacts 5000".
sandbox: venv
	$(PY) -m include.sandbox serve $(SANDBOX_ARGS)

# Sync benchmark against the sandbox: API calls and their minimum, wall time, peak RSS per
# task (docs/benchmarks.md). SCENARIO=smoke|daily|first-sync; BENCH_ARGS="--scale 0.1".
SCENARIO ?= daily
bench: venv
	$(PY) -m bench.run --scenario $(SCENARIO) $(BENCH_ARGS)

# Seeded two-way convergence simulation: DAYS simulated days (required), SEED optional.
simulate: venv
	$(if $(DAYS),,$(error DAYS is missing: run make simulate DAYS=30))
	$(PY) -m include.sandbox.simulation --days $(DAYS) --seed $(or $(SEED),1)
