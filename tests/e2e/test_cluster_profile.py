"""`make cluster-demo` is CI's own step (`.ci/run`), not a test here: it takes the machine's
PostgreSQL, the Redis broker and three more ports for minutes. What runs in `make test` is the
profile's pure parts."""

from __future__ import annotations

from pipelines import cluster_profile


def test_worker_hostname_names_the_worker(monkeypatch):
    monkeypatch.setenv("VIDREC_WORKER_NAME", "worker2")
    assert cluster_profile.worker_hostname().startswith("worker2@")
    monkeypatch.delenv("VIDREC_WORKER_NAME")
    assert "@" not in cluster_profile.worker_hostname()


def test_airflow_env_is_the_celery_postgres_profile(tmp_path):
    env = cluster_profile.airflow_env(tmp_path, "postgresql+psycopg2://postgres@127.0.0.1:5432/vidrec_airflow")
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://")
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"] == "db+postgresql+psycopg2://postgres@127.0.0.1:5432/vidrec_airflow"
    assert env["AIRFLOW__CORE__HOSTNAME_CALLABLE"] == "pipelines.cluster_profile.worker_hostname"
    # one JWT secret for every component (tasks' execution-API tokens are checked by the api-server)
    assert (
        env["AIRFLOW__API_AUTH__JWT_SECRET"]
        == cluster_profile.airflow_env(tmp_path, "x")["AIRFLOW__API_AUTH__JWT_SECRET"]
    )
