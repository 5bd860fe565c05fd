"""Publish and serving against a real 3-master Redis Cluster (``redis-server --cluster-enabled``,
joined by ``redis-cli --cluster create``), selected by a ``redis+cluster://`` URL.

What must hold: every key of a version is written to the master serving its slot and reads back
the same bytes; one user's keys share a slot; the live pointer flips and old versions are removed
on every node; the API's cache hit is answered through the cluster client, which follows MOVED
from a stale map; with one master's process killed, the users in its slots get degraded answers
(its breaker opens) and every other user a normal one.
"""

from __future__ import annotations

import time

import httpx
import numpy as np
import pytest
import redis

from cache import keys
from cache.cluster import key_slot
from cache.packed import VocabBytes
from cache.writer import TopK, TopKMatrix, connect, publish_version, write_if_live
from pipelines.redis_server import private_cluster
from serving.app import create_app
from serving.settings import Settings
from tests.conftest import ServerThread
from tests.integration.test_redis_faults import metric

NS = "cluster"
USERS = [f"u{i}" for i in range(600)]
VIDEOS = [f"v{i}" for i in range(80)]


@pytest.fixture
def cluster(tmp_path):
    with private_cluster(tmp_path / "cluster") as running:
        yield running


def matrix(version: int) -> TopKMatrix:
    rng = np.random.default_rng(version)
    index = np.stack([rng.permutation(len(VIDEOS))[:20] for _ in USERS]).astype(np.int32)
    scores = np.sort(rng.random((len(USERS), 20)).astype(np.float32), axis=1)[:, ::-1].copy()
    return TopKMatrix(USERS, VocabBytes(VIDEOS), index, scores)


def publish(url: str, version: str, seed: int, grace_seconds: int = 3600) -> dict:
    client = connect(url)
    try:
        similar = TopK(VIDEOS[:10], [VIDEOS[i + 1 : i + 6] for i in range(10)], [[1.0] * 5] * 10)
        return publish_version(
            client, NS, version, matrix(seed), (["v1", "v2"], [0.6, 0.4]), 600, similar=similar,
            by_category={"news": (["v3"], [1.0])}, grace_seconds=grace_seconds,
        )  # fmt: skip
    finally:
        client.close()


def node_keys(ports: list[int]) -> dict[int, set[bytes]]:
    out = {}
    for port in ports:
        c = redis.Redis(port=port)
        out[port] = set(c.scan_iter(match=f"vidrec:{NS}:*", count=1000))
        c.close()
    return out


def test_publish_writes_each_key_on_its_master_and_flips(cluster):
    url, ports = cluster
    meta = publish(url, "v1", seed=1)
    assert meta["users"] == len(USERS) and meta["keys"] == len(USERS) + 10 + 2
    held = node_keys(ports)
    assert all(len(k) > 100 for k in held.values()), {p: len(k) for p, k in held.items()}  # spread over all three
    c = connect(url)
    expected = matrix(1)
    for i in (0, 1, 299, 599):
        got = keys.decode_items(c.get(keys.user_key(NS, "v1", USERS[i])))
        assert [v for v, _ in got] == [VIDEOS[j] for j in expected.index[i]]
        assert np.allclose([s for _, s in got], expected.scores[i])
    assert keys.decode_items(c.get(keys.similar_key(NS, "v1", "v0")))[0][0] == "v1"
    assert c.get(keys.live_key(NS)) == b"v1"
    # one user's keys share a slot: the API's cache hit is one node's round trip
    u = "u42"
    slots = {key_slot(k(NS, "v1", u)) for k in (keys.user_key, keys.fresh_user_key)} | {key_slot(keys.hist_key(NS, u))}
    assert len(slots) == 1
    # write_if_live across slots (the refresher's path): written while live, refused after a flip
    assert write_if_live(c, NS, "v1", {keys.user_key(NS, "v1", f"u{i}"): b"x" for i in range(30)}) == 30
    assert c.get(keys.user_key(NS, "v1", "u7")) == b"x"
    publish(url, "v2", seed=2)
    publish(url, "v3", seed=3, grace_seconds=0)  # v1 goes: neither live nor the rollback target
    assert write_if_live(c, NS, "v1", {keys.user_key(NS, "v1", "u1"): b"y"}) == -1
    c.close()
    remaining = set().union(*node_keys(ports).values())
    assert not any(b":v:v1:" in k for k in remaining)
    assert any(b":v:v3:" in k for k in remaining) and any(b":v:v2:" in k for k in remaining)


def test_api_reads_through_the_cluster_and_one_lost_master_degrades_only_its_slots(cluster):
    url, ports = cluster
    publish(url, "v1", seed=1)
    settings = Settings(redis_url=url, namespace=NS, live_version_cache_seconds=0, redis_timeout_seconds=0.2)
    with ServerThread(create_app(settings)) as srv, httpx.Client(base_url=srv.url, timeout=10) as c:
        body = c.get("/v1/users/u5/recommendations", params={"k": 5}).json()
        assert body["source"] == "cache" and not body["degraded"]
        assert [i["video_id"] for i in body["items"]] == [VIDEOS[j] for j in matrix(1).index[5][:5]]
        # events for users on every node in one request; the history then filters their answers
        watched = [VIDEOS[j] for j in matrix(1).index[5][:2]]
        events = [{"user_id": "u5", "video_id": v} for v in watched] + [
            {"user_id": u, "video_id": "v9"} for u in USERS[:40]
        ]
        assert c.post("/v1/events", json={"events": events}).status_code == 202
        again = c.get("/v1/users/u5/recommendations", params={"k": 5}).json()
        assert not set(watched) & {i["video_id"] for i in again["items"]}
        assert c.get("/v1/videos/v0/similar").json()["items"][0]["video_id"] == "v1"

        # kill the master serving u0's slot
        owner = {}
        for port in ports:
            r = redis.Redis(port=port)
            for start, end, master, *_ in r.execute_command("CLUSTER", "SLOTS"):
                for u in USERS[:60]:
                    if start <= key_slot(u) <= end:
                        owner[u] = int(master[1])
            r.close()
            break
        victim = owner["u0"]
        assert len(set(owner.values())) == 3
        redis.Redis(port=victim).shutdown(nosave=True)
        time.sleep(0.3)
        degraded, normal = [], []
        for _ in range(3):  # past the breaker's failures: still only that node's users
            for u in USERS[:60]:
                r = c.get(f"/v1/users/{u}/recommendations", params={"k": 5})
                assert r.status_code == 200, r.text
                (degraded if r.json()["degraded"] else normal).append(u)
        assert set(degraded) == {u for u, p in owner.items() if p == victim}
        assert set(normal) == {u for u, p in owner.items() if p != victim}
        assert metric(c.get("/metrics").text, "vidrec_redis_breaker_openings_total") == 1  # that node's


def test_cluster_client_follows_moved_from_a_stale_map(cluster):
    import asyncio

    from cache.cluster_client import ClusterPipelinedRedis

    url, ports = cluster
    publish(url, "v1", seed=1)

    async def run() -> tuple[list, int]:
        client = ClusterPipelinedRedis(url, timeout=1.0)
        smap = await client.slot_map()
        slot = key_slot("u3")
        right = smap.node_of(slot)
        smap.moved(slot, next(n for n in smap.nodes if n != right))  # stale: points at another master
        got = await client.execute_many(
            [("GET", keys.user_key(NS, "v1", "u3")), ("LRANGE", keys.hist_key(NS, "u3"), 0, 5)]
        )
        redirects = client.redirects
        assert (await client.slot_map()).node_of(slot) == right  # corrected by the MOVED
        await client.close()
        return got, redirects

    got, redirects = asyncio.run(run())
    assert redirects == 2 and keys.decode_items(got[0])[0][0] == VIDEOS[matrix(1).index[3][0]] and got[1] == []
