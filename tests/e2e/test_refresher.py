"""The refresher (pipelines/refresher.py) beside a real API and a real Redis, on the demo model
trained and published by the session's pipeline run."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import replace

import httpx
import pytest
import redis

from cache import keys
from pipelines.refresher import Refresher
from serving.app import create_app
from serving.settings import Settings
from tests.conftest import ServerThread

pytestmark = pytest.mark.slow


def live_version(cfg) -> str:  # type: ignore[no-untyped-def]
    return redis.Redis.from_url(cfg.redis_url).get(keys.live_key(cfg.namespace)).decode()


def test_posted_watches_refresh_the_served_list_within_two_seconds(pipeline_run):
    cfg, _ = pipeline_run
    version = live_version(cfg)
    model_items = set(json.loads((cfg.workdir / "models" / version / "items.json").read_text()))
    known_user = json.loads((cfg.workdir / "models" / version / "users.json").read_text())[-1]
    client = redis.Redis.from_url(cfg.redis_url)
    saved = client.get(keys.user_key(cfg.namespace, version, known_user))
    settings = Settings(redis_url=cfg.redis_url, namespace=cfg.namespace, model_root=str(cfg.workdir / "models"))
    stop = threading.Event()
    refresher = Refresher(cfg)
    thread = threading.Thread(target=refresher.run, args=(stop, 100), daemon=True)
    thread.start()
    try:
        with ServerThread(create_app(settings)) as server, httpx.Client(base_url=server.url, timeout=5) as http:
            for user in ("refresh-newcomer", known_user):
                before = http.get(f"/v1/users/{user}/recommendations", params={"k": 20}).json()
                watched = [i["video_id"] for i in before["items"][:3]]
                posted = time.monotonic()
                assert http.post("/v1/events", json={"events": [{"user_id": user, "video_id": v} for v in watched]}).status_code == 202  # fmt: skip
                while True:
                    after = http.get(f"/v1/users/{user}/recommendations", params={"k": 20}).json()
                    stored = client.get(keys.user_key(cfg.namespace, version, user))
                    if after["source"] == "cache" and stored is not None and stored != saved:
                        break
                    assert time.monotonic() - posted < 2.0, (user, after["source"], refresher.counts)
                    time.sleep(0.02)
                listed = [v for v, _ in keys.decode_items(stored)]
                assert not set(listed) & set(watched)  # the refreshed list leaves the new watches out
                assert set(listed) <= model_items and after["model_version"] == version
                assert [i["video_id"] for i in after["items"]] != [i["video_id"] for i in before["items"]]
    finally:
        stop.set()
        thread.join(5)
        if saved is not None:  # the session's other tests read the published list of this user
            client.set(keys.user_key(cfg.namespace, version, known_user), saved, keepttl=True)
        client.delete(keys.user_key(cfg.namespace, version, "refresh-newcomer"))
    assert refresher.counts["written"] >= 2


def test_a_publish_during_refreshing_is_never_undone(pipeline_run, namespace):
    """A refresher never writes into a version that is no longer live."""
    cfg, _ = pipeline_run
    cfg = replace(cfg, namespace=namespace)
    version = live_version(pipeline_run[0])
    client = redis.Redis.from_url(cfg.redis_url)
    client.set(keys.live_key(namespace), version)
    client.set(keys.meta_key(namespace, version), "{}", ex=600)
    refresher = Refresher(cfg)
    items = json.loads((cfg.workdir / "models" / version / "items.json").read_text())

    def watch(user: str) -> None:
        client.lpush(keys.hist_key(namespace, user), items[0], items[1])
        client.xadd(keys.events_stream_key(namespace), {"user_id": user, "video_id": items[1], "ts": "1"})

    watch("w1")
    assert refresher.step(block_ms=100) == 1
    assert client.exists(keys.user_key(namespace, version, "w1"))
    assert 0 < client.pttl(keys.user_key(namespace, version, "w1")) <= 600_000  # expires with the version

    client.set(keys.live_key(namespace), "20990101-00000000")  # a publish flips the pointer
    watch("w2")
    assert refresher.step(block_ms=100) == 1
    assert not client.exists(keys.user_key(namespace, version, "w2"))  # nothing written into the old version
    assert refresher.counts["stale"] >= 1
    assert client.xpending(keys.events_stream_key(namespace), "vidrec-refresher")["pending"] == 0
