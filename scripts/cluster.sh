#!/usr/bin/env bash
# The production profile on this machine: `scripts/cluster.sh up|down|status|demo`.
# Airflow with the CeleryExecutor (Redis broker), PostgreSQL metadata DB, scheduler, dag processor,
# API server, two Celery workers, a 3-master Redis Cluster (pipelines/cluster_profile.py).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
export TF_USE_LEGACY_KERAS=1 HF_HUB_OFFLINE=1 TF_CPP_MIN_LOG_LEVEL=2
bash scripts/tools.sh redis-cli:redis-tools psql:postgresql-client
exec .venv/bin/python -m pipelines.cluster_profile "${1:-status}"
