"""The HTTP API through TestClient (lifespan runs), against the real Redis."""

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from cache.writer import TopK, publish_version
from serving.app import create_app
from serving.settings import Settings


@pytest.fixture
def published(redis_client, namespace):
    topk = TopK(["u1"], [["v3", "v1", "v2"]], [[0.9, 0.5, 0.1]])
    similar = TopK(["v1", "v2"], [["v2", "v3"], ["v1"]], [[0.8, 0.2], [0.8]])
    publish_version(
        redis_client,
        namespace,
        "ver1",
        topk,
        (["p1", "p2", "v3"], [0.5, 0.3, 0.2]),
        600,
        similar=similar,
        by_category={"cooking": (["v2", "v1"], [0.6, 0.4])},
    )
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


def test_redis_outage_serves_degraded_popular_then_recovers(tmp_path: Path):
    """A Redis of the test's own, stopped mid-test: answers keep coming from the in-process copy,
    and the cache is served again once Redis is back."""
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
            assert c.post("/v1/events", json={"events": [{"user_id": "u1", "video_id": "v1"}]}).status_code == 503
            assert "vidrec_redis_errors_total 2.0" in c.get("/metrics").text
            # Redis returns (empty: it keeps nothing on disk); the lists are republished
            assert ensure_redis(url, tmp_path)
            r = redis.Redis.from_url(url)
            publish_version(r, "outage", "ver2", TopK(["u1"], [["v9"]], [[1.0]]), (["p1"], [1.0]), 600)
            r.close()
            body = c.get("/v1/users/u1/recommendations").json()
            assert body["source"] == "cache" and not body["degraded"] and body["model_version"] == "ver2"
            assert c.get("/readyz").status_code == 200
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
        "import sys, serving.app, serving.store, cache.keys; "
        "bad = [m for m in ('tensorflow', 'torch', 'numpy', 'pandas') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(__file__).parents[2])
    assert out.returncode == 0, out.stdout + out.stderr


def test_similar_videos(client):
    body = client.get("/v1/videos/v1/similar", params={"k": 1}).json()
    assert body["source"] == "similar" and body["model_version"] == "ver1"
    assert body["items"] == [{"video_id": "v2", "score": pytest.approx(0.8)}]
    r = client.get("/v1/videos/nope/similar")
    assert r.status_code == 404 and "not in live version ver1" in r.json()["detail"]
    assert client.get("/v1/videos/bad id/similar").status_code == 422


def test_popular_overall_and_by_category(client):
    assert [i["video_id"] for i in client.get("/v1/popular", params={"k": 2}).json()["items"]] == ["p1", "p2"]
    body = client.get("/v1/popular", params={"category": "cooking"}).json()
    assert body["category"] == "cooking" and [i["video_id"] for i in body["items"]] == ["v2", "v1"]
    assert client.get("/v1/popular", params={"category": "knitting"}).status_code == 404


def test_posted_events_are_filtered_from_answers(client, redis_client, published):
    r = client.post(
        "/v1/events",
        json={"events": [{"user_id": "u1", "video_id": "v3", "completion": 0.9}, {"user_id": "new", "video_id": "p1"}]},
    )
    assert r.status_code == 202 and r.json() == {"accepted": 2}
    # v3 was the top of u1's cached list; seconds later it is gone from the answer
    assert [i["video_id"] for i in client.get("/v1/users/u1/recommendations").json()["items"]] == ["v1", "v2"]
    # a new user's popular fallback is filtered too
    assert [i["video_id"] for i in client.get("/v1/users/new/recommendations").json()["items"]] == ["p2", "v3"]
    # the event is in the stream the nightly job reads, with a server-side timestamp
    (_, fields), *_ = redis_client.xrange(f"vidrec:{published}:events")
    assert fields[b"user_id"] == b"u1" and fields[b"video_id"] == b"v3" and int(fields[b"ts"]) > 1.7e9


@pytest.mark.parametrize(
    "body",
    [
        {"events": []},
        {"events": [{"user_id": "u 1", "video_id": "v1"}]},
        {"events": [{"user_id": "u1"}]},
        {"events": [{"user_id": "u1", "video_id": "v1", "completion": 1.5}]},
        {"events": [{"user_id": "u1", "video_id": "v1", "event": "purchase"}]},
        {"nothing": 1},
        [1, 2],
    ],
)
def test_malformed_events_are_422(client, body):
    r = client.post("/v1/events", json=body)
    assert r.status_code == 422 and r.json()["detail"]


def test_oversized_event_bodies_are_413(redis_url, published):
    settings = Settings(redis_url=redis_url, namespace=published, max_events_per_request=2, max_body_bytes=2048)
    with TestClient(create_app(settings)) as c:
        three = {"events": [{"user_id": "u1", "video_id": "v1"}] * 3}
        assert c.post("/v1/events", json=three).status_code == 413
        huge = {"events": [{"user_id": "u1", "video_id": "v1", "event": "view"}] * 100}
        r = c.post("/v1/events", json=huge)
        assert r.status_code == 413 and "over 2048 bytes" in r.json()["detail"]


def test_api_keys(redis_url, published):
    with TestClient(create_app(Settings(redis_url=redis_url, namespace=published, api_keys="k1, k2"))) as c:
        r = c.get("/v1/users/u1/recommendations")
        assert r.status_code == 401 and "missing X-API-Key" in r.json()["detail"]
        assert c.get("/v1/users/u1/recommendations", headers={"X-API-Key": "nope"}).status_code == 403
        assert c.get("/v1/users/u1/recommendations", headers={"X-API-Key": b"k\xe4"}).status_code == 403  # non-ASCII
        assert c.get("/v1/users/u1/recommendations", headers={"X-API-Key": "k2"}).status_code == 200
        assert c.post("/v1/events", json={"events": []}, headers={"X-API-Key": "bad"}).status_code == 403
        assert c.get("/healthz").status_code == 200 and c.get("/metrics").status_code == 200


def test_metrics_count_requests_and_sources(client):
    client.get("/v1/users/u1/recommendations")
    client.get("/v1/users/stranger/recommendations")
    client.get("/v1/users/u1/recommendations?k=0")
    text = client.get("/metrics").text
    route = 'route="/v1/users/{user_id}/recommendations"'
    assert f'vidrec_http_requests_total{{method="GET",{route},status="200"}} 2.0' in text
    assert f'vidrec_http_requests_total{{method="GET",{route},status="422"}} 1.0' in text
    assert 'vidrec_served_lists_total{degraded="false",source="cache"} 1.0' in text
    assert 'vidrec_served_lists_total{degraded="false",source="popular"} 1.0' in text
    assert f"vidrec_http_request_seconds_count{{{route}}} 3.0" in text


def test_fast_path_and_the_fastapi_route_answer_alike(client):
    """Well-formed requests are answered by FastPath; a repeated parameter sends the same request
    through FastAPI's route (the last value wins there): same status, same body."""
    for user, query in [("u1", "k=2&exclude=v3"), ("stranger", "k=2"), ("u1", "k=3&exclude=")]:
        fast = client.get(f"/v1/users/{user}/recommendations?{query}")
        routed = client.get(f"/v1/users/{user}/recommendations?k=7&{query}")
        assert fast.status_code == routed.status_code == 200
        assert fast.json() == routed.json() and fast.headers["content-type"] == "application/json"


def test_fast_path_accepts_only_what_validation_would_pass_unchanged():
    from serving.fastpath import FastPath
    from serving.metrics import Metrics

    async def handler(*_: object) -> bytes:
        return b"{}"

    fast = FastPath(lambda *_: None, handler, Settings(max_k=50, api_keys="k1"), Metrics())  # type: ignore[arg-type]

    def accept(path: str, qs: bytes = b"", key: bytes | None = b"k1") -> object:
        headers = [(b"x-api-key", key)] if key is not None else []
        return fast._accept({"path": path, "query_string": qs, "headers": headers})

    assert accept("/v1/users/u-1.a:b_c/recommendations") == ("u-1.a:b_c", 20, "")
    assert accept("/v1/users/u1/recommendations", b"k=5&exclude=a%2Cb&other=1") == ("u1", 5, "a,b")
    for path, qs in [
        ("/v1/users/u1/recommendations", b"k=0"),
        ("/v1/users/u1/recommendations", b"k=51"),
        ("/v1/users/u1/recommendations", b"k=ten"),
        ("/v1/users/u1/recommendations", b"k=%EF%BC%95"),  # a full-width digit
        ("/v1/users/u1/recommendations", b"k=1&k=2"),
        ("/v1/users/u1/recommendations", b"exclude=" + b"x" * 10_001),
        ("/v1/users/bad id/recommendations", b""),
        ("/v1/users/u1\n/recommendations", b""),
        ("/v1/users//recommendations", b""),
        ("/v1/users/a/b/recommendations", b""),
        ("/v1/users/u1/similar", b""),
    ]:
        assert accept(path, qs) is None, (path, qs)
    assert accept("/v1/users/u1/recommendations", key=None) is None  # FastAPI answers 401
    assert accept("/v1/users/u1/recommendations", key=b"k2") is None  # and 403


def test_search_fast_path_accepts_only_what_validation_would_pass_unchanged():
    from serving.fastpath import SearchFastPath
    from serving.metrics import Metrics

    async def handler(*_: object) -> bytes:
        return b"{}"

    fast = SearchFastPath(lambda *_: None, handler, Settings(max_k=50, api_keys="k1"), Metrics())  # type: ignore[arg-type]

    def accept(qs: bytes, path: str = "/v1/search", key: bytes | None = b"k1") -> object:
        headers = [(b"x-api-key", key)] if key is not None else []
        return fast._accept({"path": path, "query_string": qs, "headers": headers})

    assert accept(b"q=cats") == ("cats", 20, None, "semantic")
    assert accept(b"q=red+f%C3%BCr%20cats&k=5&mode=hybrid&user_id=u1&x=1") == ("red für cats", 5, "u1", "hybrid")
    assert accept(b"q=%20") == (" ", 20, None, "semantic")  # blank: the shared handler's 422
    for qs in [
        b"",  # no query: FastAPI's 422
        b"q=",
        b"q=" + b"x" * 501,
        b"q=a&k=0",
        b"q=a&k=51",
        b"q=a&mode=fuzzy",
        b"q=a&user_id=bad%20id",
        b"q=a&q=b",
    ]:
        assert accept(qs) is None, qs
    assert accept(b"q=a", path="/v1/searches") is None
    assert accept(b"q=a", key=None) is None and accept(b"q=a", key=b"k2") is None


def test_kept_search_answers_are_bounded_by_count_and_bytes(monkeypatch):
    from serving.metrics import Metrics
    from serving.online import OnlineScorers, SearchIndexes
    from serving.routes import search
    from serving.routes.common import Context

    ctx = Context(Settings(search_query_cache=3), Metrics(), OnlineScorers(""))
    kept = search.Search(ctx, SearchIndexes("", "", 0.8))
    for i in range(5):
        kept._keep(("v1", f"q{i}", 20, "semantic"), b"x" * 10, 1)
    assert [k[1] for k in kept._answers] == ["q2", "q3", "q4"] and kept._bytes == 30
    kept._keep(("v1", "q3", 20, "semantic"), b"y" * 20, 1)  # replaced: counted once, most recent
    assert [k[1] for k in kept._answers] == ["q2", "q4", "q3"] and kept._bytes == 40
    monkeypatch.setattr(search, "MAX_KEPT_BYTES", 45)
    kept._keep(("v1", "q5", 20, "semantic"), b"z" * 15, 1)  # 55 bytes: the oldest goes
    assert [k[1] for k in kept._answers] == ["q4", "q3", "q5"] and kept._bytes == 45
    kept._keep(("v1", "big", 20, "semantic"), b"z" * 46, 1)  # larger than the whole budget: not kept
    assert ("v1", "big", 20, "semantic") not in kept._answers and kept._bytes == 45
