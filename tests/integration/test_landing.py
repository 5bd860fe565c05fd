"""Events posted to the API land for training exactly once (pipelines/landing.py), against a real
Redis, a real API server and real processes (one killed between landing and acknowledging)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pandas as pd
import pytest
import redis

from cache import keys
from pipelines import dataset, ingest, landing
from pipelines.config import PipelineConfig
from pipelines.nightly import run_nightly
from serving.app import create_app
from serving.settings import Settings
from tests.conftest import REPO, ServerThread
from tests.e2e.test_day_zero import DAY, T0, write_source

RUN_DATE = "2026-12-01"


def config(tmp_path: Path, redis_url: str, namespace: str) -> PipelineConfig:
    events = [(f"u{u}", f"v{1 + (u + j) % 5}", T0 + 4 * DAY + j * 3600 + u) for u in range(6) for j in range(3)]
    source = write_source(tmp_path / "src", events=events, comments=[], media=False)
    work = tmp_path / "work"  # hashed n-grams: text features in well under a second
    return PipelineConfig(source, work, namespace=namespace, redis_url=redis_url, text_encoder="hashed-ngram")


def landed_files(cfg: PipelineConfig) -> pd.DataFrame:
    files = sorted(landing.landed_dir(cfg).glob("date=*/part-*.parquet"))
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True) if files else pd.DataFrame()


def post(cfg: PipelineConfig, rows: list[dict[str, object]]) -> None:
    app = create_app(Settings(redis_url=cfg.redis_url, namespace=cfg.namespace))
    with ServerThread(app) as server:
        answer = httpx.post(f"{server.url}/v1/events", json={"events": rows}, timeout=10)
        assert answer.status_code == 202, answer.text


def test_posted_events_are_landed_by_ingest_and_reach_the_training_split(tmp_path, redis_url, namespace):
    cfg = config(tmp_path, redis_url, namespace)
    posted = [{"user_id": "newcomer", "video_id": f"v{i}", "ts": T0 + 5 * DAY + i * 60} for i in (1, 2, 4)]
    post(cfg, posted)
    summary = ingest.run(cfg, RUN_DATE)
    assert summary["stream_landed"] == 3 and summary["landed_events"] == 3
    events = ingest.load(cfg, RUN_DATE).events
    mine = events[events["user_id"] == "newcomer"]
    assert sorted(mine["video_id"]) == ["v1", "v2", "v4"] and (mine["event_id"] != "").all()
    assert summary["events"] == 18 + 3  # the source's and the posted ones
    run_nightly(cfg, RUN_DATE, ("frame_features", "text_features", "dataset"))
    ds = dataset.load(cfg, RUN_DATE)
    split_events = pd.concat([ds.split.train, ds.split.test])
    assert ds.users.index("newcomer") in set(split_events["user_idx"])
    # ingesting again lands nothing new and counts each event once
    again = ingest.run(cfg, RUN_DATE)
    assert again["stream_read"] == 0 and again["events"] == 21


def test_bad_posted_events_are_quarantined_with_the_reason_and_acknowledged(tmp_path, redis_url, namespace):
    cfg = config(tmp_path, redis_url, namespace)
    client = redis.Redis.from_url(redis_url)
    stream = keys.events_stream_key(namespace)
    client.xadd(stream, {"user_id": "u1", "video_id": "no-such-video", "ts": str(T0 + 5 * DAY)})
    client.xadd(stream, {"user_id": "u1", "video_id": "v1"})  # no ts
    client.xadd(stream, {"user_id": "u1", "video_id": "v1", "ts": str(T0 + 5 * DAY)})
    got = landing.land_stream(cfg, {"v1", "v2"})
    assert (got["read"], got["landed"], got["quarantined"]) == (3, 1, 2)
    quarantine = pd.concat(pd.read_parquet(f) for f in (landing.landed_dir(cfg) / "quarantine").glob("*.parquet"))
    assert sorted(quarantine["reason"]) == ["unknown video_id", "unparseable ts"]
    assert client.xpending(stream, landing.GROUP)["pending"] == 0


CRASH_AFTER_LANDING = """
import os, signal, sys
from pathlib import Path
from pipelines import landing
from pipelines.config import PipelineConfig
from pipelines.nightly import run_nightly

def die(*args, **kwargs):  # the process is killed after the batch is written, before XACK
    os.kill(os.getpid(), signal.SIGKILL)

landing.ack = die
cfg = PipelineConfig(source=Path(sys.argv[1]), workdir=Path(sys.argv[2]), namespace=sys.argv[3], redis_url=sys.argv[4])
landing.land_stream(cfg, {"v1", "v2", "v3", "v4", "v5"}, batch=int(sys.argv[5]))
"""


@pytest.mark.parametrize("rerun_batch", [4, 3])  # the same batch boundaries after the crash, or others
def test_killed_between_landing_and_acknowledging_no_event_is_lost_or_doubled(
    tmp_path, redis_url, namespace, rerun_batch
):
    cfg = config(tmp_path, redis_url, namespace)
    client = redis.Redis.from_url(redis_url)
    stream = keys.events_stream_key(namespace)
    for i in range(10):
        client.xadd(stream, {"user_id": f"p{i}", "video_id": f"v{1 + i % 5}", "ts": str(T0 + 5 * DAY + i)})
    args = [str(cfg.source), str(cfg.workdir), namespace, redis_url, "4"]
    crashed = subprocess.run([sys.executable, "-c", CRASH_AFTER_LANDING, *args], cwd=REPO, env=os.environ.copy())
    assert crashed.returncode == -signal.SIGKILL
    assert len(landed_files(cfg)) == 4  # the first batch was written, then the process died
    assert client.xpending(stream, landing.GROUP)["pending"] == 4  # ... before acknowledging it

    rerun = landing.land_stream(cfg, {"v1", "v2", "v3", "v4", "v5"}, batch=rerun_batch)
    assert rerun["redelivered"] == 4 and rerun["read"] == 10
    assert client.xpending(stream, landing.GROUP)["pending"] == 0
    landed = landing.load_landed(cfg, T0 + 30 * DAY)
    assert sorted(landed["user_id"]) == sorted(f"p{i}" for i in range(10))  # each event once
    assert landed["event_id"].is_unique
    assert client.xlen(stream) == 0  # acknowledged by the only group: trimmed


def test_trimming_never_drops_what_another_group_has_not_acknowledged(tmp_path, redis_url, namespace):
    cfg = config(tmp_path, redis_url, namespace)
    client = redis.Redis.from_url(redis_url)
    stream = keys.events_stream_key(namespace)
    client.xgroup_create(stream, "refresher", id="0", mkstream=True)  # another reader, behind
    ids = [client.xadd(stream, {"user_id": "u1", "video_id": "v1", "ts": str(T0 + 5 * DAY + i)}) for i in range(5)]
    client.xreadgroup("refresher", "r1", {stream: ">"}, count=2)  # it read two and acknowledged none
    got = landing.land_stream(cfg, {"v1"})
    assert got["landed"] == 5 and got["trimmed"] == 0
    assert client.xlen(stream) == 5
    client.xack(stream, "refresher", *ids[:2])
    client.xreadgroup("refresher", "r1", {stream: ">"})
    client.xack(stream, "refresher", *ids[2:])
    assert landing.land_stream(cfg, {"v1"})["trimmed"] == 5


def test_watches_of_recommended_videos_are_counted_by_version_online_and_after_landing(tmp_path, redis_url, namespace):
    cfg = config(tmp_path, redis_url, namespace)
    app = create_app(Settings(redis_url=cfg.redis_url, namespace=cfg.namespace))
    ts = T0 + 5 * DAY
    rows = [
        {"user_id": "u1", "video_id": "v1", "ts": ts, "recommended_by": {"version": "20261130-aaaa0000", "source": "cache"}},
        {"user_id": "u2", "video_id": "v2", "ts": ts + 1, "recommended_by": {"version": "20261130-aaaa0000", "source": "online"}},
        {"user_id": "u3", "video_id": "v3", "ts": ts + 2},
    ]  # fmt: skip
    with ServerThread(app) as server:
        assert httpx.post(f"{server.url}/v1/events", json={"events": rows}, timeout=10).status_code == 202
        bad = {"events": [{"user_id": "u1", "video_id": "v1", "recommended_by": {"version": "x", "source": "radio"}}]}
        assert httpx.post(f"{server.url}/v1/events", json=bad, timeout=10).status_code == 422
        metrics = httpx.get(f"{server.url}/metrics", timeout=10).text
    assert 'vidrec_recommended_watches_total{source="cache",version="20261130-aaaa0000"} 1.0' in metrics
    assert landing.land_stream(cfg, {"v1", "v2", "v3"})["landed"] == 3
    report = landing.online_report(cfg, "2025-11-01")
    assert report["watches"] == 3
    [row] = report["versions"]
    assert row["version"] == "20261130-aaaa0000" and row["recommended_watches"] == 2
    assert row["by_source"] == {"cache": 1, "online": 1} and row["recommended_watch_rate"] == round(2 / 3, 4)
