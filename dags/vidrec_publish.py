"""
### vidrec_publish

Publish a named model version, or roll back. Trigger by hand:

* `{"version": "20261128-1a2b3c4d"}`: score every active user with that exported model
  (`<workdir>/models/<version>/`) and the events of the run that exported it (or of `run_date`
  when given), write, verify and flip: what `vidrec publish --version V` does, and the way back
  after Redis lost its data (the same version and events give the same bytes). A popular-only
  version (`popular-YYYYMMDD`, published on a night without a model) is republished the same way.
  Not gated unless `gate` is true (publishing by name is a deliberate choice; with `gate` the
  events are those of `run_date` or the run's logical date).
* `{"rollback": true}`: point the live pointer back at the newest earlier version whose keys are
  still in Redis. One command; no scoring.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag, task

from pipelines.dag_support import default_args
from pipelines.options import airflow_params

PARAMS = {
    "version": Param(None, type=["null", "string"], pattern=r"^([0-9]{8}-[0-9a-f]{8}|popular-[0-9]{8})$", description="Model version to publish"),
    "rollback": Param(False, type="boolean", description="Roll back to the previous version instead"),
    "gate": Param(False, type="boolean", description="Refuse a version worse than the live one on NDCG@10"),
    **airflow_params(["source", "workdir"]),
    "run_date": Param(
        None, type=["null", "string"], format="date",
        description="Whose ingested events to score with (YYYY-MM-DD); default: the version's own run",
    ),  # fmt: skip
    **airflow_params(["namespace", "redis_url"]),
}  # fmt: skip


@task(doc_md="Publish the named version (write, verify, flip) or roll back the live pointer.")
def publish_or_rollback(params: dict, logical_date=None) -> dict:  # type: ignore[no-untyped-def,type-arg]
    from pipelines.dag_support import publish_named

    return publish_named(params, logical_date)


@dag(
    dag_id="vidrec_publish",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["vidrec", "publish"],
    params=PARAMS,
    doc_md=__doc__,
    default_args=default_args(),
)
def vidrec_publish() -> None:
    publish_or_rollback()


vidrec_publish()
