#!/usr/bin/env bash
# Run the `airflow` CLI against this project's own embedded Airflow: SQLite metadata DB under
# var/airflow, the DAGs in dags/, no example DAGs. Migrates the DB on first use.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
export AIRFLOW_HOME="${AIRFLOW_HOME:-$root/var/airflow}"
export AIRFLOW__CORE__DAGS_FOLDER="$root/dags"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__UNIT_TEST_MODE="${AIRFLOW__CORE__UNIT_TEST_MODE:-False}"
export TF_USE_LEGACY_KERAS=1 HF_HUB_OFFLINE=1 TF_CPP_MIN_LOG_LEVEL=2
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
# `airflow standalone` starts its parts (scheduler, dag-processor, api-server, triggerer) as
# `airflow ...` found on PATH: the venv's bin must be on it.
export PATH="$root/.venv/bin:$PATH"
airflow="$root/.venv/bin/airflow"
mkdir -p "$AIRFLOW_HOME"
if [ ! -f "$AIRFLOW_HOME/.migrated" ]; then
  "$airflow" db migrate >"$AIRFLOW_HOME/migrate.log" 2>&1 || { cat "$AIRFLOW_HOME/migrate.log" >&2; exit 1; }
  touch "$AIRFLOW_HOME/.migrated"
fi
exec "$airflow" "$@"
