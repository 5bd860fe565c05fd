"""What the DAG files share: typed configs from Airflow params and one-step runners.

Only the standard library at import time: DAG files import this at parse time, and the
scheduler parses them often. Everything heavy is imported inside the functions (in the task).
"""

from __future__ import annotations

from typing import Any

MODEL_PARAMS = (
    "fusion", "user_pooling", "embedding_dim", "max_history", "epochs", "learning_rate", "temperature",
    "completion_weighting", "use_user_id", "early_stopping_patience",
)  # fmt: skip


def default_args() -> dict[str, Any]:
    """Task retries for every vidrec DAG: twice, 5 minutes apart, unless the environment says
    otherwise (the demo and the tests set VIDREC_TASK_RETRIES=0 so a failure ends at once)."""
    import os
    from datetime import timedelta

    return {
        "retries": int(os.environ.get("VIDREC_TASK_RETRIES", "2")),
        "retry_delay": timedelta(seconds=int(os.environ.get("VIDREC_RETRY_DELAY_SECONDS", "300"))),
    }


def run_date_of(params: dict[str, Any], logical_date: Any) -> str:
    run_date = params.get("run_date") or (logical_date.strftime("%Y-%m-%d") if logical_date else None)
    if not run_date:
        raise ValueError("no run date: this run has no logical date; trigger it with the run_date param")
    return str(run_date)


def config_from_params(params: dict[str, Any]) -> Any:
    """The typed, validated ``PipelineConfig``; raises ValueError naming a bad param."""
    from dataclasses import replace
    from pathlib import Path

    from pipelines.config import PipelineConfig

    cfg = PipelineConfig(
        source=Path(params["source"]),
        workdir=Path(params["workdir"]),
        namespace=params.get("namespace", "demo"),
        redis_url=params.get("redis_url", "redis://127.0.0.1:6379/0"),
        frame_shards=int(params.get("frame_shards", 2)),
        protocol=params.get("protocol", "global_time"),
        publish_gate=bool(params.get("publish_gate", True)),
        **({"tune_seconds": float(params["tune_seconds"])} if params.get("tune_seconds") is not None else {}),
    )
    overrides = {name: params[name] for name in MODEL_PARAMS if params.get(name) is not None}
    try:
        return replace(cfg, model=replace(cfg.model, **overrides))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"invalid model params {overrides}: {exc}") from exc


def run_step(step: str, params: dict[str, Any], logical_date: Any) -> dict[str, Any]:
    """Run one pipeline step for the run date (heavy imports happen inside the step)."""
    from pipelines.nightly import run_nightly

    return run_nightly(config_from_params(params), run_date_of(params, logical_date), steps=(step,))[step]


def validate(params: dict[str, Any], logical_date: Any) -> dict[str, Any]:
    """Fail before any work: the config must build and the source folder must exist."""
    from dataclasses import asdict

    cfg = config_from_params(params)
    run_date = run_date_of(params, logical_date)
    if not cfg.source.is_dir():
        raise ValueError(f"source {cfg.source} is not a folder")
    return {"run_date": run_date, "model": asdict(cfg.model), "protocol": cfg.protocol}


def publish_named(params: dict[str, Any], logical_date: Any) -> dict[str, Any]:
    """Publish ``params['version']`` (a folder under <workdir>/models), or roll back when asked."""

    from pipelines import publish, train

    cfg = config_from_params(params)
    if params.get("rollback"):
        client = publish.connect(cfg)
        try:
            out = publish.rollback(client, cfg.namespace)
        finally:
            client.close()
        publish.record_live(cfg, str(out["to"]), publish.run_date_of_version(str(out["to"])))
        return out
    if not params.get("version"):
        raise ValueError("give the version to publish (a folder under <workdir>/models), or rollback=true")
    if params.get("gate"):
        model = train.load_model_version(cfg, params["version"])
        return publish.publish_model(cfg, run_date_of(params, logical_date), model, gate=True)
    # ungated: the same path as `vidrec publish --version V` (recovery after Redis lost its data);
    # the events are those of the run that exported the version unless run_date is given
    return publish.republish(cfg, params["version"], params.get("run_date"))
