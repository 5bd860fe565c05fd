"""
### vidrec_nightly

The nightly flow: ingest -> frame_features / text_features -> dataset -> train -> evaluate -> publish.

Every task is keyed by the run date (the run's logical date, or the `run_date` param for a
manual run that has none) and overwrites only its own partition under
`<workdir>/runs/<run_date>/<step>/`, so a retry or a rerun gives the same outputs.
Bad rows and unusable video files are quarantined with a reason; the run goes on.
Heavy libraries (TensorFlow, PyTorch, OpenCV) are imported inside the tasks, never at parse time.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Asset, Param, dag, task

from pipelines.dag_support import default_args
from pipelines.options import airflow_params

# Data-aware scheduling: the features and the model are assets other DAGs can be scheduled on.
FEATURES = Asset("vidrec://features", extra={"what": "frame and text embeddings of the catalogue"})
MODEL = Asset("vidrec://model", extra={"what": "an exported two-tower version under <workdir>/models"})

PARAMS = {
    **airflow_params(["source", "workdir", "namespace", "redis_url"]),
    "run_date": Param(
        None,
        type=["null", "string"],
        description="YYYY-MM-DD; defaults to the run's logical date. Needed for a manual run without one.",
    ),
    # Defaults from the config dataclasses (pipelines.options), as `vidrec run` uses them.
    **airflow_params(
        [
            "tune_seconds",
            "epochs",
            "frame_shards",
            "publish_shards",
            "protocol",
            "fusion",
            "user_pooling",
            "publish_gate",
        ]
    ),
}


def _config_and_date(params: dict, logical_date: object) -> tuple:  # type: ignore[type-arg]
    from pipelines.dag_support import config_from_params, run_date_of

    return config_from_params(params), run_date_of(params, logical_date)


def _run_step(step: str, params: dict, logical_date: object) -> dict:  # type: ignore[type-arg]
    from pipelines.dag_support import run_step

    return run_step(step, params, logical_date)


STEP_DOCS = {
    "ingest": "Read and validate the three tables; bad rows to the quarantine table.",
    "frame_features": "Join the frame-feature shards into the step's partition (the reduce).",
    "text_features": "Caption and comment embeddings with all-MiniLM-L6-v2 (cached by text hash).",
    "dataset": "Item/user vocabularies, aligned content arrays, the split of the protocol param.",
    "train": "Train the TFRS two-tower (early stopping on validation NDCG) and export a versioned model folder.",
    "evaluate": "Metrics of the model and the baselines on held-out events; report.json and report.html.",
    "publish": "After every publish shard: check each shard's manifest and every user's key, write the "
    "similar videos and popular lists, flip the live pointer (a missing shard leaves the previous version "
    "live). Gated: a model worse than the live one on NDCG@10 (same protocol) is not published "
    "and the task's summary says why. When Redis has lost the version this workdir last made live "
    "(restart without persistence, failover to an empty replica), that version is republished first, "
    "whatever the gate decides. A night without a model (no events yet) publishes a popular-only version.",
}


def _step_task(step: str):  # type: ignore[no-untyped-def]
    """One TaskFlow task that runs ``pipelines.<step>.run`` for the run date."""

    outlets = {"text_features": [FEATURES], "train": [MODEL]}.get(step, [])

    @task(task_id=step, doc_md=STEP_DOCS[step], outlets=outlets)
    def run_step(params: dict, logical_date=None) -> dict:  # type: ignore[no-untyped-def]
        return _run_step(step, params, logical_date)

    return run_step


@task(doc_md="The shard numbers frame_features is mapped over (from the frame_shards param).")
def frame_shards(params: dict) -> list[int]:
    return list(range(int(params["frame_shards"])))


@task(doc_md="Sample frames, embed and pool the videos of one shard (skips unchanged files).")
def frame_features_shard(shard: int, params: dict, logical_date=None) -> dict:  # type: ignore[no-untyped-def]
    from pipelines.frame_features import run_shard

    cfg, run_date = _config_and_date(params, logical_date)
    return run_shard(cfg, run_date, shard, cfg.frame_shards)


@task(doc_md="Decide what tonight publishes (gate, restore a lost live version, popular-only night): plan.json.")
def publish_plan(params: dict, logical_date=None) -> list[int]:  # type: ignore[no-untyped-def]
    """The shard numbers publish_shard is mapped over (none when no model is published tonight)."""
    from pipelines import publish

    cfg, run_date = _config_and_date(params, logical_date)
    planned = publish.plan(cfg, run_date)
    return list(range(int(planned["shards"]))) if planned["mode"] == "shards" else []


@task(doc_md="Score and write one shard's users' top-k lists under the new version (not live yet).")
def publish_shard(shard: int, params: dict, logical_date=None) -> dict:  # type: ignore[no-untyped-def]
    from pipelines import publish

    cfg, run_date = _config_and_date(params, logical_date)
    return publish.run_shard(cfg, run_date, shard)


def _finish_publish(params: dict, logical_date: object = None) -> dict:  # type: ignore[type-arg]
    from pipelines import publish

    cfg, run_date = _config_and_date(params, logical_date)
    return publish.finish_plan(cfg, run_date)


def _reduce_frame_features(params: dict, logical_date: object = None) -> dict:
    from pipelines.frame_features import reduce_shards

    cfg, run_date = _config_and_date(params, logical_date)
    return reduce_shards(cfg, run_date, cfg.frame_shards)


@dag(
    dag_id="vidrec_nightly",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["vidrec", "nightly"],
    params=PARAMS,
    doc_md=__doc__,
    # Retries from the environment: production keeps the defaults; `dags test` in the demo and the
    # tests sets VIDREC_TASK_RETRIES=0 so a failure ends the run instead of waiting 5 minutes.
    default_args=default_args(),
)
def vidrec_nightly() -> None:
    t = {step: _step_task(step)() for step in STEP_DOCS if step not in ("frame_features", "publish")}
    reduce_frames = task(task_id="frame_features", doc_md=STEP_DOCS["frame_features"], outlets=[FEATURES])(
        _reduce_frame_features
    )()
    shards = frame_features_shard.expand(shard=frame_shards())
    t["ingest"] >> shards >> reduce_frames >> t["dataset"]
    t["ingest"] >> t["text_features"] >> t["dataset"]
    # An empty plan (no model tonight) maps no shard; publish then runs all the same (none_failed).
    finish = task(task_id="publish", doc_md=STEP_DOCS["publish"], trigger_rule="none_failed")(_finish_publish)()
    planned = publish_plan()
    t["dataset"] >> t["train"] >> t["evaluate"] >> planned
    publish_shard.expand(shard=planned) >> finish


vidrec_nightly()
