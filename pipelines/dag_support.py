"""What the DAG files share: typed configs from Airflow params and one-step runners.

Only the standard library at import time: DAG files import this at parse time, and the
scheduler parses them often. Everything heavy is imported inside the functions (in the task).
"""

from __future__ import annotations

from typing import Any


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
    """The typed, validated ``PipelineConfig`` (``pipelines.options``: a param absent or None takes
    its dataclass default); raises ValueError naming a bad param."""
    from pipelines.options import build_config

    try:
        return build_config(params)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"invalid params: {exc}") from exc


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

    from cache.writer import connect, rollback
    from pipelines import artifacts, publish

    cfg = config_from_params(params)
    if params.get("rollback"):
        client = connect(cfg.redis_url)
        try:
            out = rollback(client, cfg.namespace)
        finally:
            client.close()
        publish.record_live(cfg, str(out["to"]), publish.run_date_of_version(str(out["to"])))
        return out
    if not params.get("version"):
        raise ValueError("give the version to publish (a folder under <workdir>/models), or rollback=true")
    if params.get("gate"):
        model = artifacts.load_model_version(cfg, params["version"])
        return publish.publish_model(cfg, run_date_of(params, logical_date), model, gate=True)
    # ungated: the same path as `vidrec publish --version V` (recovery after Redis lost its data);
    # the events are those of the run that exported the version unless run_date is given
    return publish.republish(cfg, params["version"], params.get("run_date"))
