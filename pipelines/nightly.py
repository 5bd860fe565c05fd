"""The whole nightly flow in one process, in DAG order (what ``vidrec run`` does without Airflow).

``run_step`` names every step's module; a step's module is imported when the step runs (training
and evaluation load TensorFlow, frame features OpenCV and PyTorch).
"""

from __future__ import annotations

import logging
import time

from pipelines.config import STEPS, PipelineConfig

log = logging.getLogger(__name__)


def run_step(step: str, cfg: PipelineConfig, run_date: str) -> dict[str, object]:
    """Run one step; its module is imported here, when the step runs."""
    match step:
        case "ingest":
            from pipelines import ingest as module
        case "frame_features":
            from pipelines import frame_features as module
        case "text_features":
            from pipelines import text_features as module
        case "dataset":
            from pipelines import dataset as module
        case "train":
            from pipelines import train as module
        case "evaluate":
            from pipelines import evaluate as module
        case "publish":
            from pipelines import publish as module
        case _:
            raise ValueError(f"unknown step {step!r}; steps are {STEPS}")
    return module.run(cfg, run_date)


def run_nightly(cfg: PipelineConfig, run_date: str, steps: tuple[str, ...] = STEPS) -> dict[str, object]:
    summaries: dict[str, object] = {}
    for step in steps:
        t0 = time.perf_counter()
        summaries[step] = run_step(step, cfg, run_date)
        log.info("step %s finished in %.1fs", step, time.perf_counter() - t0)
    return summaries
