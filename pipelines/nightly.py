"""The whole nightly flow in one process, in DAG order (what ``vidrec run`` does without Airflow)."""

from __future__ import annotations

import importlib
import logging
import time

from pipelines.config import STEPS, PipelineConfig

log = logging.getLogger(__name__)


def run_nightly(cfg: PipelineConfig, run_date: str, steps: tuple[str, ...] = STEPS) -> dict[str, object]:
    summaries: dict[str, object] = {}
    for step in steps:
        t0 = time.perf_counter()
        summaries[step] = importlib.import_module(f"pipelines.{step}").run(cfg, run_date)
        log.info("step %s finished in %.1fs", step, time.perf_counter() - t0)
    return summaries
