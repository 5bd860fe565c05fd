"""The workdir as a URL: the whole night (ingest, frames, text, dataset, training, evaluation,
publish) runs with every artifact on an fsspec filesystem that is not the local disk (``memory://``,
standing in for ``s3://``: the same ``upath.UPath`` code path, no server needed), writes the same
Parquet bytes and publishes the same lists as a run on a local folder, and the serving side (the
online model of the API and the refresher) loads the model folder from there."""

from __future__ import annotations

import hashlib
import uuid

import numpy as np
import pandas as pd
import pytest
import redis

from tests.e2e.test_day_zero import DAY, RUN_DATE, T0, VIDEOS, write_source

pytestmark = pytest.mark.slow


def _parquet_digests(root) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in (root / "runs").rglob("*.parquet")
    }


def _lists(url: str, ns: str) -> dict[bytes, bytes]:
    client = redis.Redis.from_url(url)
    try:
        ks = sorted(k for k in client.scan_iter(f"vidrec:{ns}:v:*:u:*"))
        return dict(zip([k.split(b":u:")[1] for k in ks], client.mget(ks), strict=True))
    finally:
        client.close()


def test_a_night_with_the_workdir_on_an_fsspec_url(tmp_path, redis_url):
    from dataclasses import replace

    from pipelines import storage
    from pipelines.config import PipelineConfig
    from pipelines.nightly import run_nightly
    from recsys.online import OnlineModel

    events = [(f"u{u}", VIDEOS[(u + j) % 5][0], T0 + 4 * DAY + j * 3600 + u * 10) for u in range(40) for j in range(3)]
    source = write_source(tmp_path / "src", events=events, comments=[("v1", "so tasty")], media=True)
    remote_url = f"memory://vidrec-test-{uuid.uuid4().hex[:8]}/work"
    runs = {}
    namespaces = {}
    for name, workdir in (("local", tmp_path / "work"), ("remote", remote_url)):
        namespaces[name] = f"test-url-{name}-{uuid.uuid4().hex[:6]}"
        cfg = PipelineConfig(source=source, workdir=workdir, namespace=namespaces[name], redis_url=redis_url)
        cfg = replace(cfg, model=replace(cfg.model, epochs=2), tune_seconds=0.0)
        runs[name] = (cfg, run_nightly(cfg, RUN_DATE))

    cfg, out = runs["remote"]
    assert storage.is_remote(cfg.workdir) and str(cfg.workdir) == remote_url
    assert out["publish"]["published"] and out["evaluate"]["users_evaluated"] > 0
    version = out["train"]["version"]
    model_dir = cfg.model_dir(version)
    for name in ("user_tower/saved_model.pb", "item_embeddings.npy", "items.json", "item_tower_numpy.npz"):
        assert (model_dir / name).exists(), name
    assert (cfg.partition(RUN_DATE, "evaluate") / "report.html").exists()
    assert not (tmp_path / "memory:").exists() and not any(p.name.startswith("memory") for p in tmp_path.iterdir())

    local_cfg, local_out = runs["local"]
    assert local_out["train"]["version"] == version  # the version digests the source and settings, not the workdir
    # Same Parquet bytes, the same evaluation and the same published lists as the local run.
    digests = _parquet_digests(cfg.workdir)
    assert len(digests) >= 10 and digests == _parquet_digests(local_cfg.workdir)
    assert out["evaluate"]["metrics"] == local_out["evaluate"]["metrics"]
    assert _lists(redis_url, namespaces["remote"]) == _lists(redis_url, namespaces["local"])

    # Read back through the storage helper and by the serving side's numpy model.
    train = storage.read_parquet(cfg.partition(RUN_DATE, "dataset") / "train.parquet")
    assert isinstance(train, pd.DataFrame) and len(train) == out["dataset"]["train_events"]
    online = OnlineModel(model_dir)
    assert len(online.items) == len(VIDEOS) and np.isfinite(online.item_vectors).all()
    vectors, has_history = online.vectors(["u1"], [["v1", "v2"]])
    assert has_history.all() and np.isfinite(vectors).all()

    for ns in namespaces.values():
        client = redis.Redis.from_url(redis_url)
        try:
            for k in client.scan_iter(f"vidrec:{ns}:*"):
                client.delete(k)
        finally:
            client.close()
