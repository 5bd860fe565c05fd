"""Publish in shards, on the session's trained model and a real Redis: each shard writes its
users' lists of the new version; a missing shard leaves the previous version live; a retried
shard writes the same bytes; the finished version holds the lists of a one-process publish (the
same ids; scores equal up to float32 rounding: the user tower and the scoring run on other
batches, so the last bits of a sum may differ)."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import numpy as np
import pytest
import redis

from cache import keys
from cache.writer import PublishError, TopK, publish_version
from pipelines import publish
from tests.conftest import RUN_DATE

pytestmark = pytest.mark.slow


def version_values(client: redis.Redis, ns: str, version: str) -> dict[bytes, bytes]:
    """Every key of the version but its meta, by name without the namespace."""
    found = sorted(k for k in client.scan_iter(match=f"{keys.version_prefix(ns, version)}:*", count=1000))
    found = [k for k in found if not k.endswith(b":meta")]
    return {k.split(b":", 2)[2]: v for k, v in zip(found, client.mget(found), strict=True)} if found else {}


def test_shards_then_finish_flip_once_all_are_written(pipeline_run, tmp_path, redis_url, namespace):
    cfg, _ = pipeline_run
    work = tmp_path / "work"  # a copy: the session's run folder stays as other tests read it
    shutil.copytree(cfg.workdir, work, ignore=shutil.ignore_patterns("cache"))
    sharded = replace(cfg, workdir=work, namespace=namespace, publish_shards=3)
    client = redis.Redis.from_url(redis_url)
    try:
        publish_version(client, namespace, "old", TopK(["u"], [["v"]], [[1.0]]), (["v"], [1.0]), 600)
        planned = publish.plan(sharded, RUN_DATE, gate=False)
        assert planned["mode"] == "shards" and planned["shards"] == 3
        version = str(planned["version"])
        first = [publish.run_shard(sharded, RUN_DATE, s) for s in (0, 1)]
        with pytest.raises(PublishError, match="shard 2 of 3 did not finish"):
            publish.finish_plan(sharded, RUN_DATE)
        assert client.get(keys.live_key(namespace)) == b"old"  # the previous version stays live

        publish.run_shard(sharded, RUN_DATE, 2)
        before = version_values(client, namespace, version)
        assert publish.run_shard(sharded, RUN_DATE, 1) == first[1]  # a retry: the same manifest ...
        assert version_values(client, namespace, version) == before  # ... and the same bytes
        summary = publish.finish_plan(sharded, RUN_DATE)
        assert client.get(keys.live_key(namespace)) == version.encode()
        assert (
            summary["shards"] == 3
            and summary["users"]
            == sum(m["users"] for m in first)
            + json.loads(
                (work / "runs" / RUN_DATE / "publish" / f"shards-{version}" / "shard-00002-of-00003.json").read_text()
            )["users"]
        )
        sharded_values = version_values(client, namespace, version)

        # the same version published in one process (one shard) into another namespace
        single = replace(sharded, namespace=f"{namespace}-one", publish_shards=1)
        try:
            assert publish.run(single, RUN_DATE, gate=False)["users"] == summary["users"]
            one = version_values(client, single.namespace, version)
            assert one.keys() == sharded_values.keys()
            for key, blob in one.items():
                a, b = keys.decode_items(blob), keys.decode_items(sharded_values[key])
                assert len({v for v, _ in a} & {v for v, _ in b}) >= 0.9 * len(a), key  # ties may swap at the cut
                assert np.allclose(sorted(s for _, s in a), sorted(s for _, s in b), atol=1e-4), key
        finally:
            for k in client.scan_iter(match=f"vidrec:{single.namespace}:*"):
                client.unlink(k)
    finally:
        client.close()
