"""The closed loop's speed: the refresher, the time from a posted watch to the refreshed list, and
landing the event stream.

    python -m benchmarks.refresh [--users 10000] [--items 10000] [--events 20000]

A synthetic model folder (random item vectors and numpy user-tower weights of the demo model's
shapes) is published as the live version of a ``bench-refresh`` namespace; the figures:

* refresher events/s (one process, batches of 500 events of distinct users), next to the numpy
  user tower's forward and top-k alone on the same histories (``OnlineModel.recommend_many``),
  target >= 0.5;
* POST /v1/events to refreshed list: a real API process (``vidrec serve``) and a refresher
  thread; one watch per new user at 100 events/s for 10 s; the time until the user's list exists
  in the live version (p50 and p99), next to the time Redis takes to answer one GET;
* landing: ``pipelines.landing.land_stream`` events/s next to reading and acknowledging the same
  stream with ``XREADGROUP``/``XACK`` alone, target >= 0.5.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import redis

from benchmarks._report import report
from benchmarks.serving import free_port
from cache import keys
from cache.client import DEFAULT_REDIS_URL
from cache.writer import unlink_matching
from pipelines.config import PipelineConfig
from pipelines.redis_server import ensure_redis

NS = "bench-refresh"
VERSION = "20260101-bench000"
DIM, HIDDEN, ID_DIM, HISTORY = 64, 128, 32, 20


def write_model(folder: Path, n_users: int, n_items: int, seed: int = 0) -> list[str]:
    """A model folder OnlineModel loads: ids, item rows (embedding + bias column), numpy tower."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    items = [f"v{i}" for i in range(n_items)]
    (folder / "items.json").write_text(json.dumps(items))
    (folder / "users.json").write_text(json.dumps([f"u{i}" for i in range(n_users)]))
    emb = rng.normal(size=(n_items, DIM)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    np.save(folder / "item_embeddings.npy", np.concatenate([emb, rng.normal(size=(n_items, 1)).astype(np.float32)], 1))
    config = {"user_pooling": "mean", "completion_weighting": False, "use_user_id": True, "max_history": HISTORY,
              "embedding_dim": DIM, "temperature": 0.1, "item_bias": True, "freshness": False,
              "content_prior": False, "content_prior_dim": 0}  # fmt: skip
    arrays = {
        "hidden_kernel": rng.normal(0, 0.1, (DIM + 1 + ID_DIM, HIDDEN)).astype(np.float32),
        "hidden_bias": np.zeros(HIDDEN, np.float32),
        "out_kernel": rng.normal(0, 0.1, (HIDDEN, DIM)).astype(np.float32),
        "out_bias": np.zeros(DIM, np.float32),
        "user_known": np.arange(n_users + 1, dtype=np.int32),
        "user_embedding": rng.normal(0, 0.1, (n_users + 1, ID_DIM)).astype(np.float32),
        "config": np.frombuffer(json.dumps(config).encode(), np.uint8),
    }
    with (folder / "user_tower_numpy.npz").open("wb") as f:
        np.savez(f, **arrays)
    return items


def watch_histories(client: redis.Redis, users: list[str], items: list[str], rng: np.random.Generator) -> None:
    pipe = client.pipeline(transaction=False)
    for u in users:
        pipe.delete(keys.hist_key(NS, u))
        pipe.lpush(keys.hist_key(NS, u), *rng.choice(items, 10).tolist())
    pipe.execute()


def refresher_rate(cfg: PipelineConfig, client: redis.Redis, items: list[str], n_events: int) -> list[dict]:  # type: ignore[type-arg]
    from pipelines.refresher import Refresher
    from recsys.online import OnlineModel

    rng = np.random.default_rng(1)
    users = [f"u{i}" for i in range(n_events)]
    watch_histories(client, users, items, rng)
    refresher = Refresher(cfg)
    pipe = client.pipeline(transaction=False)
    for u in users:
        pipe.xadd(keys.events_stream_key(NS), {"user_id": u, "video_id": items[0], "ts": "1"})
    pipe.execute()
    refresher.live_model()
    t0 = time.perf_counter()
    while refresher.step(block_ms=10):
        pass
    ours = n_events / (time.perf_counter() - t0)
    model = OnlineModel(cfg.workdir / "models" / VERSION)
    recents = [[v.decode() for v in client.lrange(keys.hist_key(NS, u), 0, 49)] for u in users[:5000]]
    t0 = time.perf_counter()
    for s in range(0, len(recents), 500):
        model.recommend_many(users[s : s + 500], recents[s : s + 500], cfg.topk, [set(r) for r in recents[s : s + 500]])
    alone = len(recents) / (time.perf_counter() - t0)
    return [{"figure": "refresher events/s (1 process)", "ours": ours, "reference": alone, "ratio": ours / alone,
             "target": 0.5, "reference_is": "numpy user tower + top-k alone, same histories, batches of 500"}]  # fmt: skip


def post_to_refreshed(cfg: PipelineConfig, client: redis.Redis, items: list[str], seconds: int) -> list[dict]:  # type: ignore[type-arg]
    from pipelines.refresher import Refresher

    port = free_port()
    env = {**os.environ, "VIDREC_REDIS_URL": cfg.redis_url, "VIDREC_NAMESPACE": NS,
           "VIDREC_MODEL_ROOT": str(cfg.workdir / "models")}  # fmt: skip
    api = subprocess.Popen([".venv/bin/vidrec", "serve", "--port", str(port), "--namespace", NS], env=env)
    stop = threading.Event()
    refresher = Refresher(cfg)
    thread = threading.Thread(target=refresher.run, args=(stop, 50), daemon=True)
    thread.start()
    latencies = []
    try:
        http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5)
        deadline = time.monotonic() + 30
        while True:
            try:
                http.get("/healthz")
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        pending: dict[str, float] = {}
        start, n = time.monotonic(), 100 * seconds
        for i in range(n):
            user = f"new-{i}"
            while time.monotonic() < start + i / 100:  # 100 events/s, while checking what is done
                done = [u for u, ok in zip(pending, _exist(client, pending), strict=True) if ok]
                for u in done:
                    latencies.append(time.monotonic() - pending.pop(u))
                time.sleep(0.002)
            pending[user] = time.monotonic()
            http.post("/v1/events", json={"events": [{"user_id": user, "video_id": items[i % len(items)]}]})
        end = time.monotonic() + 10
        while pending and time.monotonic() < end:
            for u in [u for u, ok in zip(pending, _exist(client, pending), strict=True) if ok]:
                latencies.append(time.monotonic() - pending.pop(u))
            time.sleep(0.002)
    finally:
        stop.set()
        thread.join(5)
        api.terminate()
        api.wait(10)
    t0 = time.perf_counter()
    for _ in range(200):
        client.get(keys.live_key(NS))
    get_ms = (time.perf_counter() - t0) / 200 * 1000
    lat = np.array(latencies) * 1000
    lost = len(pending)
    return [
        {"figure": "POST to refreshed list p50 ms", "ours": float(np.percentile(lat, 50)), "reference": get_ms,
         "ratio": get_ms / float(np.percentile(lat, 50)), "target": 0.0, "reference_is": "one Redis GET round trip"},
        {"figure": "POST to refreshed list p99 ms", "ours": float(np.percentile(lat, 99)), "reference": get_ms,
         "ratio": get_ms / float(np.percentile(lat, 99)), "target": 0.0, "reference_is": "one Redis GET round trip"},
        {"figure": "events never refreshed (of posted)", "ours": float(lost), "reference": float(n),
         "ratio": 1.0 - lost / n, "target": 1.0, "reference_is": "events posted at 100/s"},
    ]  # fmt: skip


def _exist(client: redis.Redis, users: dict[str, float]) -> list[bool]:
    pipe = client.pipeline(transaction=False)
    for u in users:
        pipe.exists(keys.user_key(NS, VERSION, u))
    return [bool(x) for x in pipe.execute()]


def landing_rate(cfg: PipelineConfig, client: redis.Redis, items: list[str], n_events: int) -> list[dict]:  # type: ignore[type-arg]
    from pipelines import landing

    stream = keys.events_stream_key(NS)

    def fill(n: int) -> None:
        client.delete(stream)  # and its consumer groups
        pipe = client.pipeline(transaction=False)
        for i in range(n):
            pipe.xadd(
                stream, {"user_id": f"u{i % 1000}", "video_id": items[i % len(items)], "ts": str(1_764_000_000 + i)}
            )
        pipe.execute()

    fill(100)
    landing.land_stream(cfg, set(items))  # warm: imports and first writes are not timed
    fill(n_events)
    client.xgroup_create(stream, "bench-raw", id="0")
    t0 = time.perf_counter()
    while reply := client.xreadgroup("bench-raw", "c", {stream: ">"}, count=landing.BATCH):
        client.xack(stream, "bench-raw", *[sid for sid, _ in reply[0][1]])
    raw = n_events / (time.perf_counter() - t0)
    fill(n_events)
    t0 = time.perf_counter()
    got = landing.land_stream(cfg, set(items))
    ours = n_events / (time.perf_counter() - t0)
    assert got["landed"] == n_events, got
    return [{"figure": "landing events/s", "ours": ours, "reference": raw, "ratio": ours / raw, "target": 0.5,
             "reference_is": "XREADGROUP + XACK alone, same stream and batches"}]  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=10_000)
    ap.add_argument("--items", type=int, default=10_000)
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--seconds", type=int, default=10)
    args = ap.parse_args()
    redis_url = os.environ.get("VIDREC_REDIS_URL", DEFAULT_REDIS_URL)
    ensure_redis(redis_url, Path("var/state"))
    client = redis.Redis.from_url(redis_url)
    work = Path("var/bench-refresh")
    shutil.rmtree(work, ignore_errors=True)
    unlink_matching(client, f"vidrec:{NS}:*")
    items = write_model(work / "models" / VERSION, args.users, args.items)
    client.set(keys.live_key(NS), VERSION)
    client.set(keys.meta_key(NS, VERSION), "{}", ex=3600)
    cfg = PipelineConfig(source=work, workdir=work, namespace=NS, redis_url=redis_url)
    try:
        rows = refresher_rate(cfg, client, items, args.events)
        rows += post_to_refreshed(cfg, client, items, args.seconds)
        rows += landing_rate(cfg, client, items, args.events)
    finally:
        unlink_matching(client, f"vidrec:{NS}:*")
    report("refresh", rows, {"users": args.users, "items": args.items, "events": args.events, "k": cfg.topk,
                             "cpus": os.cpu_count()})  # fmt: skip


if __name__ == "__main__":
    main()
