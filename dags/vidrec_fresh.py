"""
### vidrec_fresh

Hourly: videos uploaded since the live model version was trained are embedded (frames and text,
reusing the feature caches: only new clips are decoded), scored from their content by the live
model's item tower (numpy, no retraining) and added to the live version: their similar-video
lists and the `fresh` lists per category (`GET /v1/fresh`). The same as `vidrec fresh`.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag, task

from pipelines.dag_support import default_args
from pipelines.options import airflow_params

PARAMS = {
    **airflow_params(["source", "workdir", "namespace", "redis_url"]),
    "run_date": Param(
        None,
        type=["null", "string"],
        format="date",
        description="YYYY-MM-DD the ingest and feature partitions are keyed by; default: the run's logical date",
    ),  # fmt: skip
}


@task(doc_md="Score the videos the live version does not know and add them to it.")
def fresh(params: dict, logical_date=None) -> dict:  # type: ignore[no-untyped-def,type-arg]
    from pipelines import fresh as job
    from pipelines.dag_support import config_from_params, run_date_of

    return job.run(config_from_params(params), run_date_of(params, logical_date))


@dag(
    dag_id="vidrec_fresh",
    schedule="@hourly",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["vidrec", "fresh"],
    params=PARAMS,
    doc_md=__doc__,
    default_args=default_args(),
)
def vidrec_fresh() -> None:
    fresh()


vidrec_fresh()
