"""
### vidrec_train

Retrain and judge a model by hand: trigger with params from the UI ("Trigger DAG w/ config") or
the CLI (`airflow dags trigger vidrec_train --conf '{"fusion": "attention", "epochs": 5}'`).
Params are typed and bounded, so Airflow rejects a bad value at trigger time; `validate` then
builds the whole config and fails before any work if anything else is wrong.

validate -> ingest -> frame_features / text_features -> dataset -> train -> evaluate -> [publish]

The report (`<workdir>/runs/<run_date>/evaluate/report.html`, with `report.json`) names the data
set, protocol, baselines and cohorts. Publishing is off unless `publish` is true, and is gated
like the nightly publish (a model worse than the live one is not published).
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Asset, Param, dag, task

from pipelines.dag_support import default_args
from pipelines.options import airflow_params

MODEL = Asset("vidrec://model")

PARAMS = {
    **airflow_params(["source", "workdir"]),
    "run_date": Param(
        None,
        type=["null", "string"],
        format="date",
        description="YYYY-MM-DD the outputs are keyed by (and events are cut at); default: the run's logical date",
    ),  # fmt: skip
    # Defaults from the config dataclasses (pipelines.options), as `vidrec run` uses them.
    **airflow_params(
        [
            "protocol",
            "fusion",
            "user_pooling",
            "embedding_dim",
            "max_history",
            "tune_seconds",
            "epochs",
            "learning_rate",
            "temperature",
            "completion_weighting",
        ]
    ),  # fmt: skip
    "publish": Param(False, type="boolean", description="Publish the model to Redis after evaluation (gated)"),
    **airflow_params(["namespace", "redis_url"]),
    **airflow_params(["frame_shards"], frame_shards=1),  # the shards run in one task here
}


def _step(step: str, doc: str, outlets: list | None = None):  # type: ignore[no-untyped-def,type-arg]
    @task(task_id=step, doc_md=doc, outlets=outlets or [])
    def run(params: dict, logical_date=None) -> dict:  # type: ignore[no-untyped-def,type-arg]
        from pipelines.dag_support import run_step

        return run_step(step, params, logical_date)

    return run


@task(doc_md="Build the typed config from the params and check the source; fails before any work.")
def validate(params: dict, logical_date=None) -> dict:  # type: ignore[no-untyped-def,type-arg]
    from pipelines.dag_support import validate as check

    return check(params, logical_date)


@task.short_circuit(doc_md="Go on to publish only when the publish param is true.")
def publish_requested(params: dict) -> bool:  # type: ignore[type-arg]
    return bool(params["publish"])


@dag(
    dag_id="vidrec_train",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["vidrec", "training"],
    params=PARAMS,
    doc_md=__doc__,
    default_args=default_args(),
)
def vidrec_train() -> None:
    docs = {
        "ingest": "Read and validate the source; quarantine bad rows.",
        "frame_features": "Frame embeddings (cached: unchanged files are not decoded again).",
        "text_features": "Caption and comment embeddings (cached by text).",
        "dataset": "Vocabularies, content arrays and the split of the protocol param.",
        "train": "Train with the params' model settings; early stopping on validation NDCG@10.",
        "evaluate": "Model and baselines on held-out events; report.json and report.html.",
        "publish": "Publish the model (gated against the live one).",
    }
    t = {s: _step(s, d, [MODEL] if s == "train" else None)() for s, d in docs.items()}
    validate() >> t["ingest"] >> [t["frame_features"], t["text_features"]] >> t["dataset"]
    t["dataset"] >> t["train"] >> t["evaluate"] >> publish_requested() >> t["publish"]


vidrec_train()
