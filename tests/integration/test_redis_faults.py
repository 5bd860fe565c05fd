"""Fault probes against a private, real Redis: stalled (SIGSTOP), then killed and restarted empty.

The API runs as ``vidrec serve`` runs it (uvicorn over real HTTP). What must hold: every answer is
a 200 from the in-process fallback or a 503 with a reason, never a 500 or a hang; after a few
timeouts the circuit breaker answers without calling Redis; a probe notices recovery; a Redis that
lost its data is reported by /readyz with the command that republishes the version.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import redis

from cache.writer import TopK, publish_version
from pipelines.redis_server import find_redis_binary
from serving.app import create_app
from serving.settings import Settings
from tests.conftest import ServerThread

NS = "faults"
USERS = [f"u{i}" for i in range(20)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivateRedis:
    """A redis-server of this test's own: no persistence, so a restart comes back empty."""

    def __init__(self, workdir: Path) -> None:
        self.port, self.workdir = free_port(), workdir
        self.proc: subprocess.Popen | None = None  # type: ignore[type-arg]

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [find_redis_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
             "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.Redis(port=self.port, socket_timeout=1)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def signal(self, sig: int) -> None:
        os.kill(self.proc.pid, sig)  # type: ignore[union-attr]

    def kill(self) -> None:
        self.proc.kill()  # type: ignore[union-attr]
        self.proc.wait(10)  # type: ignore[union-attr]


@pytest.fixture
def private_redis(tmp_path):
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.signal(signal.SIGCONT) if server.proc and server.proc.poll() is None else None
    server.kill()


def publish(port: int, version: str) -> None:
    client = redis.Redis(port=port)
    lists = TopK(USERS, [[f"{version}-{u}-{j}" for j in range(5)] for u in USERS], [[1.0] * 5] * len(USERS))
    publish_version(client, NS, version, lists, (["p1", "p2"], [0.6, 0.4]), 600)
    client.close()


def api_settings(server: PrivateRedis, **fault_settings: float) -> Settings:
    """The API's settings against the private server, the live pointer read on every request."""
    return Settings(
        redis_url=f"redis://127.0.0.1:{server.port}/0", namespace=NS, live_version_cache_seconds=0, **fault_settings
    )


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in /metrics")


def test_stall_opens_the_breaker_and_a_probe_notices_recovery(private_redis):
    publish(private_redis.port, "v1")
    settings = api_settings(
        private_redis, redis_timeout_seconds=0.1, redis_breaker_failures=3, redis_breaker_cooldown_seconds=0.5
    )
    with ServerThread(create_app(settings)) as srv, httpx.Client(base_url=srv.url, timeout=10) as c:
        assert c.get("/v1/users/u1/recommendations").json()["source"] == "cache"
        private_redis.signal(signal.SIGSTOP)
        answers = []
        for i in range(30):
            t0 = time.perf_counter()
            r = c.get(f"/v1/users/u{i % 20}/recommendations", params={"k": 2})
            answers.append((r.status_code, r.json(), time.perf_counter() - t0))
        assert all(status == 200 for status, _, _ in answers), answers
        assert all(body["degraded"] and body["items"][0]["video_id"] == "p1" for _, body, _ in answers)
        m = c.get("/metrics").text
        assert metric(m, "vidrec_redis_breaker_openings_total") == 1
        assert metric(m, "vidrec_redis_breaker_rejected_total") >= 20  # those never waited on Redis
        assert metric(m, "vidrec_redis_breaker_open") == 1
        ready = c.get("/readyz")
        assert ready.status_code == 503 and "circuit open" in ready.json()["detail"]
        slow = sorted(t for _, _, t in answers)
        print(f"stalled Redis: p50 {slow[len(slow) // 2] * 1e3:.1f} ms, max {slow[-1] * 1e3:.1f} ms over 30 answers")

        private_redis.signal(signal.SIGCONT)
        deadline, body = time.monotonic() + 10, {}
        while time.monotonic() < deadline:  # a probe after each cool-down; one finds Redis back
            body = c.get("/v1/users/u3/recommendations").json()
            if body["source"] == "cache":
                break
            time.sleep(0.1)
        assert body["source"] == "cache" and not body["degraded"]
        assert metric(c.get("/metrics").text, "vidrec_redis_breaker_open") == 0


def test_redis_restarted_empty_serves_the_in_process_copy_until_republished(private_redis):
    publish(private_redis.port, "v1")
    settings = api_settings(private_redis, redis_timeout_seconds=0.2, redis_breaker_cooldown_seconds=0.2)
    with ServerThread(create_app(settings)) as srv, httpx.Client(base_url=srv.url, timeout=10) as c:
        assert c.get("/v1/users/u1/recommendations").json()["source"] == "cache"
        private_redis.kill()
        private_redis.start()  # same port, no data
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            r = c.get("/v1/users/u1/recommendations")
            assert r.status_code == 200, r.text
            assert r.json()["degraded"] and [i["video_id"] for i in r.json()["items"]] == ["p1", "p2"]
            ready = c.get("/readyz")
            if "lost" in ready.text:
                break
            time.sleep(0.1)
        assert ready.status_code == 503
        assert "vidrec publish --version v1" in ready.json()["detail"], ready.text
        assert c.get("/v1/popular").json()["degraded"]
        similar = c.get("/v1/videos/p1/similar")  # its list is gone too: degraded, not a 404
        assert similar.status_code == 200 and similar.json()["degraded"], similar.text
        events = c.post("/v1/events", json={"events": [{"user_id": "u1", "video_id": "x"}]})
        assert events.status_code == 202  # Redis answers: events are stored again

        publish(private_redis.port, "v1")  # the documented way back: republish the live version
        body = c.get("/v1/users/u2/recommendations").json()
        assert body["source"] == "cache" and not body["degraded"]
        assert c.get("/readyz").json() == {"status": "ready", "model_version": "v1"}
