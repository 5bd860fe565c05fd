"""Readers hammer a real uvicorn server while new versions publish: no mixed or missing lists."""

import threading
import time

import httpx
import pytest

from cache.writer import TopK, publish_version
from serving.app import create_app
from serving.settings import Settings
from tests.conftest import ServerThread

USERS = [f"u{i}" for i in range(200)]


def _lists(version: str) -> TopK:
    # every item id names the version that published it, so a mixed answer is visible
    return TopK(
        USERS, [[f"{version}-{u}-{j}" for j in range(20)] for u in USERS], [[1.0 - j / 100 for j in range(20)]] * 200
    )


@pytest.fixture
def server(redis_url, namespace):
    settings = Settings(redis_url=redis_url, namespace=namespace, live_version_cache_seconds=0)
    with ServerThread(create_app(settings)) as srv:
        yield srv.url


def test_readers_never_see_a_mixed_or_missing_list(server, redis_client, namespace):
    publish_version(redis_client, namespace, "v0", _lists("v0"), (["p"], [1.0]), 600)
    stop = threading.Event()
    problems: list[str] = []
    seen_versions: set[str] = set()
    answers = [0]

    def reader(offset: int) -> None:
        with httpx.Client(base_url=server, timeout=5) as c:
            i = offset
            while not stop.is_set():
                user = USERS[i % len(USERS)]
                i += 7
                r = c.get(f"/v1/users/{user}/recommendations", params={"k": 20})
                if r.status_code != 200:
                    problems.append(f"{r.status_code} {r.text[:100]}")
                    continue
                body = r.json()
                answers[0] += 1
                seen_versions.add(body["model_version"])
                ids = [it["video_id"] for it in body["items"]]
                if body["source"] != "cache" or len(ids) != 20:
                    problems.append(f"missing list for {user}: {body['source']} {len(ids)} items")
                elif any(not v.startswith(f"{body['model_version']}-{user}-") for v in ids):
                    problems.append(f"mixed list for {user} under {body['model_version']}: {ids[:3]}")

    threads = [threading.Thread(target=reader, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    try:
        for n in range(1, 7):
            publish_version(redis_client, namespace, f"v{n}", _lists(f"v{n}"), (["p"], [1.0]), 600, grace_seconds=0)
            time.sleep(0.05)
    finally:
        time.sleep(0.2)
        stop.set()
        for t in threads:
            t.join(10)
    assert not problems, problems[:5]
    assert answers[0] > 50 and len(seen_versions) >= 3, (answers[0], seen_versions)
