"""Shared fixtures: a real Redis, a generated demo source, and one trained pipeline run.

TensorFlow training and encoder loading take seconds to minutes on 2 cores, so the full
nightly run is done once per session and shared by the tests that need a trained model.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

from cache.client import DEFAULT_REDIS_URL

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
REDIS_URL = os.environ.get("VIDREC_TEST_REDIS_URL", DEFAULT_REDIS_URL)
RUN_DATE = "2026-11-28"
DEMO = {"num_videos": 96, "num_users": 160, "seed": 11}  # the session's demo source


def shared_file(*parts: str) -> Path:
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent (shared/data sits beside the checkout in this setup)")
    return path


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    from pipelines.redis_server import ensure_redis, stop_redis

    state = tmp_path_factory.mktemp("redis-state")
    started = ensure_redis(REDIS_URL, state)
    yield REDIS_URL
    if started:
        stop_redis(REDIS_URL, state)


@pytest.fixture
def redis_client(redis_url: str):
    import redis

    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def _delete_namespace(url: str, ns: str) -> None:
    import redis

    from cache.writer import unlink_matching

    client = redis.Redis.from_url(url)
    unlink_matching(client, f"vidrec:{ns}:*")
    client.close()


@pytest.fixture
def namespace(redis_url: str) -> str:
    """A namespace of this test's own, removed afterwards."""
    ns = f"test-{uuid.uuid4().hex[:10]}"
    yield ns
    _delete_namespace(redis_url, ns)


@pytest.fixture(scope="session")
def demo_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from pipelines.demo_data import DemoConfig, write_demo_source

    out = tmp_path_factory.mktemp("demo-source")
    write_demo_source(DemoConfig(**DEMO), out)
    return out


@pytest.fixture(scope="session")
def pipeline_run(demo_source: Path, redis_url: str, tmp_path_factory: pytest.TempPathFactory):
    """One whole nightly run (in-process) on the demo source, published to its own namespace."""
    from pipelines.config import PipelineConfig
    from pipelines.nightly import run_nightly

    ns = f"test-run-{uuid.uuid4().hex[:8]}"
    cfg = PipelineConfig(source=demo_source, workdir=tmp_path_factory.mktemp("work"), namespace=ns, redis_url=redis_url)
    cfg = replace(cfg, model=replace(cfg.model, epochs=8), tune_seconds=15.0)
    summaries = run_nightly(cfg, RUN_DATE)
    yield cfg, summaries
    _delete_namespace(redis_url, ns)


class ServerThread:
    """A real uvicorn server on a free loopback port, in a thread (for tests needing real HTTP),
    configured as ``vidrec serve`` runs it (``serving.http.uvicorn_options``)."""

    def __init__(self, app) -> None:  # type: ignore[no-untyped-def]
        import socket
        import threading

        import uvicorn

        from serving.http import uvicorn_options

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", **uvicorn_options())
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ServerThread:
        import time

        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
