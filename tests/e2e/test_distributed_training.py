"""Training on two worker processes (tf.distribute.MultiWorkerMirroredStrategy, TF_CONFIG each):
it runs, the chief exports the model folder, and its held-out NDCG@10 on the demo is within noise
of the same settings trained in one process."""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import replace

import pytest

from pipelines import evaluate, train
from pipelines.distributed import train_on_workers
from tests.conftest import RUN_DATE

pytestmark = pytest.mark.slow


def test_two_workers_train_a_model_as_good_as_one_process(pipeline_run, tmp_path):
    cfg, _ = pipeline_run
    ndcg = {}
    for mode in ("one", "two"):
        work = tmp_path / mode  # a copy of the session's run: its own model folder and reports
        shutil.copytree(cfg.workdir, work, ignore=shutil.ignore_patterns("cache"))
        # the settings the workers train with (pipelines.distributed: no content-only softmax there yet)
        c = replace(cfg, workdir=work, tune_seconds=0.0, model=replace(cfg.model, content_loss_weight=0.0))
        summary = train.run(c, RUN_DATE) if mode == "one" else train_on_workers(c, RUN_DATE, workers=2)
        assert (work / "models" / summary["version"] / "user_tower").is_dir()
        report = evaluate.run(c, RUN_DATE)
        m = json.loads((work / "runs" / RUN_DATE / "evaluate" / "report.json").read_text())["metrics"]["two_tower"]
        ndcg[mode] = (m["ndcg@10"], m["ndcg@10_se"])
        assert report is not None
    logs = sorted((tmp_path / "two" / "runs" / RUN_DATE / "train").glob("worker-*.log"))
    assert len(logs) == 2 and all("2 replicas in sync" in p.read_text() for p in logs)
    (a, sa), (b, sb) = ndcg["one"], ndcg["two"]
    # no worse than one process beyond noise (one-sided: with the prior at 1/temperature the two
    # workers' model once scored 0.537 against 0.465, better by 3.2 standard errors)
    assert b >= a - 3 * math.hypot(sa, sb), ndcg
