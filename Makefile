# vidrec: the README's commands. `make demo` and `make test` each set up what they need.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

export TF_USE_LEGACY_KERAS := 1
export HF_HUB_OFFLINE := 1
export TF_CPP_MIN_LOG_LEVEL := 2

.PHONY: install demo test test-fast serve bench results lint clean cluster-demo

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

install: $(STAMP)

## The main job: demo source -> Airflow DAG -> Redis -> HTTP, then print a user's list.
demo: install
	bash scripts/demo.sh

## All tests (unit, integration with real Redis and Airflow, API, end-to-end).
test: install
	bash scripts/test.sh

## Unit tests only (no model training, no Airflow).
test-fast: install
	bash scripts/test.sh -m "not slow"

## The API in the foreground (needs a published version: run `make demo` first).
serve: install
	$(BIN)/vidrec redis start
	$(BIN)/vidrec serve --host 127.0.0.1 --port $${VIDREC_API_PORT:-8000}

## The production profile end to end: Airflow on Celery + PostgreSQL, a Redis Cluster, the nightly
## DAG triggered through the REST API, its shards on two workers; everything stopped afterwards.
cluster-demo: install
	bash scripts/cluster.sh demo

## Every benchmark (figures next to their references; writes benchmarks/results/*.json).
bench: install
	bash scripts/tools.sh wrk redis-benchmark:redis-tools
	$(BIN)/python -m benchmarks.frame_features
	$(BIN)/python -m benchmarks.text_features
	$(BIN)/python -m benchmarks.topk
	$(BIN)/python -m benchmarks.serving
	$(BIN)/python -m benchmarks.serving --workers 2
	$(BIN)/python -m benchmarks.serving --server granian
	$(BIN)/python -m benchmarks.publish
	$(BIN)/python -m benchmarks.refresh
	$(BIN)/python -m benchmarks.train
	$(BIN)/python -m benchmarks.capacity > /dev/null   # docs/scale.md from the figures above

## Rerun the reference experiments (demo, MovieLens) and regenerate docs/results.md (~40 min on 2 cores).
results: install
	$(BIN)/vidrec results --out docs/results.md --var var/results

lint: install
	$(BIN)/ruff format --check recsys cache pipelines serving dags tests benchmarks
	$(BIN)/ruff check recsys cache pipelines serving dags tests benchmarks

clean:
	rm -rf var .pytest_cache
