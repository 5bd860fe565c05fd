"""The HTTP API through TestClient (lifespan runs), against the real Redis."""

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from pipelines.publish import TopK, publish_version
from serving.app import create_app
from serving.settings import Settings


@pytest.fixture
def published(redis_client, namespace):
    topk = TopK(["u1"], [["v3", "v1", "v2"]], [[0.9, 0.5, 0.1]])
    publish_version(redis_client, namespace, "ver1", topk, (["p1", "p2", "v3"], [0.5, 0.3, 0.2]), 600)
    return namespace


@pytest.fixture
def client(redis_url, published):
    with TestClient(create_app(Settings(redis_url=redis_url, namespace=published))) as c:
        yield c


def test_cache_hit(client):
    r = client.get("/v1/users/u1/recommendations", params={"k": 2})
    assert r.status_code == 200
    body = r.json()
    assert body["source"] == "cache" and body["model_version"] == "ver1" and not body["degraded"]
    assert [i["video_id"] for i in body["items"]] == ["v3", "v1"]
    assert body["items"][0]["score"] == pytest.approx(0.9)


def test_exclude_filters_served_items(client):
    body = client.get("/v1/users/u1/recommendations", params={"k": 5, "exclude": "v3,zz"}).json()
    assert [i["video_id"] for i in body["items"]] == ["v1", "v2"]


def test_unknown_user_gets_popular(client):
    body = client.get("/v1/users/stranger/recommendations").json()
    assert body["source"] == "popular" and [i["video_id"] for i in body["items"]] == ["p1", "p2", "v3"]


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/v1/users/u1/recommendations?k=0", "k"),
        ("/v1/users/u1/recommendations?k=501", "k"),
        ("/v1/users/u1/recommendations?k=ten", "k"),
        ("/v1/users/bad%20id!/recommendations", "user_id"),
        (f"/v1/users/{'x' * 129}/recommendations", "user_id"),
    ],
)
def test_bad_input_is_422_with_reason(client, path, field):
    r = client.get(path)
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"][-1] == field


def test_health_and_readiness(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready", "model_version": "ver1"}


def test_nothing_published_is_503_with_reason(redis_url, namespace):
    with TestClient(create_app(Settings(redis_url=redis_url, namespace=namespace))) as c:
        r = c.get("/v1/users/u1/recommendations")
        assert r.status_code == 503 and "no model version" in r.json()["detail"]
        assert c.get("/readyz").status_code == 503


def test_redis_outage_serves_degraded_popular(tmp_path: Path):
    """A Redis of the test's own, stopped mid-test: answers keep coming from the in-process copy."""
    import socket

    import redis

    from pipelines.redis_server import ensure_redis, stop_redis

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"redis://127.0.0.1:{port}/0"
    assert ensure_redis(url, tmp_path)
    try:
        r = redis.Redis.from_url(url)
        publish_version(r, "outage", "ver1", TopK(["u1"], [["v1"]], [[1.0]]), (["p1"], [1.0]), 600)
        r.close()
        with TestClient(create_app(Settings(redis_url=url, namespace="outage", live_version_cache_seconds=0))) as c:
            assert c.get("/v1/users/u1/recommendations").json()["source"] == "cache"
            stop_redis(url, tmp_path)
            resp = c.get("/v1/users/u1/recommendations")
            assert resp.status_code == 200
            body = resp.json()
            assert body["source"] == "popular" and body["degraded"] and body["items"][0]["video_id"] == "p1"
            assert c.get("/readyz").status_code == 503
    finally:
        stop_redis(url, tmp_path)


def test_redis_never_reachable_is_503_not_500():
    settings = Settings(redis_url="redis://127.0.0.1:1/0", namespace="nowhere")
    with TestClient(create_app(settings)) as c:
        r = c.get("/v1/users/u1/recommendations")
        assert r.status_code == 503 and "unreachable" in r.json()["detail"]


def test_cache_hit_path_imports_no_tensorflow():
    import subprocess
    import sys

    code = (
        "import sys, serving.app, serving.store, recsys.keys; "
        "bad = [m for m in ('tensorflow', 'torch', 'numpy', 'pandas') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(__file__).parents[2])
    assert out.returncode == 0, out.stdout + out.stderr
