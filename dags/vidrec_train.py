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

MODEL = Asset("vidrec://model")

PARAMS = {
    "source": Param("var/demo-source", type="string", description="Data-contract folder (videos, comments, events)"),
    "workdir": Param("var/work", type="string", description="Where partitions, caches and model versions go"),
    "run_date": Param(
        None, type=["null", "string"], format="date",
        description="YYYY-MM-DD the outputs are keyed by (and events are cut at); default: the run's logical date",
    ),  # fmt: skip
    "protocol": Param(
        "global_time", enum=["global_time", "user_time", "leave_last_out", "random"],
        description="Evaluation split: global time, per-user time (last 20%), leave-last-out, or random 80/20",
    ),  # fmt: skip
    "fusion": Param("concat", enum=["concat", "weighted_sum", "attention"], description="How the item tower fuses modalities"),
    "user_pooling": Param("mean", enum=["mean", "attention"], description="How the user tower pools its history"),
    "embedding_dim": Param(64, type="integer", minimum=8, maximum=512, description="Output width of both towers"),
    "max_history": Param(20, type="integer", minimum=1, maximum=200, description="Watched videos the user tower reads"),
    "tune_seconds": Param(150, type="number", minimum=0, maximum=86400, description="Seconds to choose model settings on validation before training (0: train as given)"),
    "epochs": Param(10, type="integer", minimum=1, maximum=200, description="Most training epochs (early stopping may end sooner)"),
    "learning_rate": Param(0.003, type="number", exclusiveMinimum=0, maximum=1, description="Adam learning rate"),
    "temperature": Param(0.1, type="number", exclusiveMinimum=0, maximum=10, description="Softmax temperature of the retrieval loss"),
    "completion_weighting": Param(False, type="boolean", description="Weight history watches by completion"),
    "publish": Param(False, type="boolean", description="Publish the model to Redis after evaluation (gated)"),
    "namespace": Param("demo", type="string", pattern=r"^[A-Za-z0-9_\-]{1,64}$", description="Redis key namespace"),
    "redis_url": Param("redis://127.0.0.1:6379/0", type="string", description="Redis to publish to"),
    "frame_shards": Param(1, type="integer", minimum=1, maximum=256, description="frame_features shards (run in one task here)"),
}  # fmt: skip


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
