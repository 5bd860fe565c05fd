"""Soak: minutes of mixed traffic against a real API process and Redis, publishing as it goes.

    python -m benchmarks.soak [--minutes 10] [--concurrency 16] [--users 5000]

Not part of CI (it runs for minutes by design). The API runs as ``vidrec serve`` runs it (uvicorn,
uvloop, one process) against the Redis at ``VIDREC_REDIS_URL`` (started by the project when none
answers), in a ``soak`` namespace. The traffic, from ``--concurrency`` client tasks:

    60% cache hits (published users)        10% misses (unknown users: popular)
    10% POST /v1/events (one to five watches) 10% similar videos
    10% malformed (k=0, k over the limit, an id with forbidden characters, a body that is not JSON,
        an event without a video id): each must be a 4xx with a reason

and every minute a new version (fresh lists for every user) is published and the live pointer
flipped, as the nightly job does. Reported: the API process's RSS after launch, after a minute
of traffic (the warm reference: caches and pools are full by then) and at the end; answers by
status; p50 and p99 of the first minute and of the whole run. Fails (exit 1) on any 5xx, any
transport error, or RSS growth over 10% from the warm reference.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import numpy as np
import psutil
import redis

from benchmarks._report import report
from benchmarks.serving import SERVERS, free_port
from cache.client import DEFAULT_REDIS_URL
from cache.writer import TopK, publish_version, unlink_matching
from pipelines.redis_server import ensure_redis

NS = "soak"
VIDEOS = [f"v{i:05d}" for i in range(5000)]


def lists(users: int, seed: int) -> TopK:
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(VIDEOS), (users, 50))
    return TopK([f"u{i}" for i in range(users)], [[VIDEOS[j] for j in row] for row in idx], [[1.0] * 50] * users)


def publish(client: redis.Redis, users: int, n: int) -> None:
    similar = TopK(VIDEOS[:500], [VIDEOS[i + 1 : i + 21] for i in range(500)], [[1.0] * 20] * 500)
    publish_version(
        client, NS, f"soak-{n}", lists(users, n), (VIDEOS[:100], [1.0] * 100), 3600, similar=similar, grace_seconds=0
    )


MALFORMED = [
    ("GET", "/v1/users/u1/recommendations?k=0", None),
    ("GET", "/v1/users/u1/recommendations?k=100000", None),
    ("GET", "/v1/users/bad%20id!/recommendations", None),
    ("POST", "/v1/events", b"{not json"),
    ("POST", "/v1/events", b'{"events": [{"user_id": "u1"}]}'),
]


async def client_task(base: str, users: int, seed: int, stop: float, log: list[tuple[float, int, float]]) -> None:
    rng = np.random.default_rng(seed)
    async with httpx.AsyncClient(base_url=base, timeout=10) as c:
        while time.monotonic() < stop:
            r = rng.random()
            t0 = time.perf_counter()
            try:
                if r < 0.6:
                    resp = await c.get(f"/v1/users/u{rng.integers(users)}/recommendations", params={"k": 20})
                elif r < 0.7:
                    resp = await c.get(f"/v1/users/new{rng.integers(10**9)}/recommendations", params={"k": 20})
                elif r < 0.8:
                    user = f"u{rng.integers(users)}"
                    events = [
                        {"user_id": user, "video_id": VIDEOS[rng.integers(5000)]} for _ in range(rng.integers(1, 6))
                    ]
                    resp = await c.post("/v1/events", json={"events": events})
                elif r < 0.9:
                    resp = await c.get(f"/v1/videos/{VIDEOS[rng.integers(500)]}/similar", params={"k": 10})
                else:
                    method, path, body = MALFORMED[rng.integers(len(MALFORMED))]
                    headers = {"content-type": "application/json"} if body is not None else None
                    resp = await c.request(method, path, content=body, headers=headers)
                status = resp.status_code
            except httpx.HTTPError:
                status = -1  # transport error: counted, fails the run
            log.append((time.monotonic(), status, time.perf_counter() - t0))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--users", type=int, default=5000)
    ap.add_argument("--publish-every", type=float, default=60.0, help="seconds between publishes")
    args = ap.parse_args()

    redis_url = os.environ.get("VIDREC_REDIS_URL", DEFAULT_REDIS_URL)
    ensure_redis(redis_url, Path("var/state"))
    client = redis.Redis.from_url(redis_url)
    publish(client, args.users, 0)
    port = free_port()
    env = {**os.environ, "VIDREC_REDIS_URL": redis_url, "VIDREC_NAMESPACE": NS}
    api = subprocess.Popen(SERVERS["uvicorn"](port, 1), env=env)
    base = f"http://127.0.0.1:{port}"
    log: list[tuple[float, int, float]] = []
    rss: dict[str, float] = {}
    published = [1]
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the API did not become ready in 30 s")
            time.sleep(0.2)
        proc = psutil.Process(api.pid)
        rss["launch"] = proc.memory_info().rss / 2**20
        start = time.monotonic()
        stop = start + args.minutes * 60
        done = threading.Event()

        def publisher() -> None:
            while not done.wait(args.publish_every):
                publish(client, args.users, published[0])
                published[0] += 1

        def sample_warm_rss() -> None:
            if not done.wait(min(60.0, args.minutes * 30)):
                rss["warm"] = proc.memory_info().rss / 2**20

        threads = [threading.Thread(target=publisher, daemon=True), threading.Thread(target=sample_warm_rss)]
        for t in threads:
            t.start()

        async def drive() -> None:
            await asyncio.gather(*(client_task(base, args.users, s, stop, log) for s in range(args.concurrency)))

        asyncio.run(drive())
        done.set()
        for t in threads:
            t.join(60)
        rss["end"] = proc.memory_info().rss / 2**20
    finally:
        api.terminate()
        api.wait(10)
        unlink_matching(client, f"vidrec:{NS}:*", 5000)

    statuses = Counter(s for _, s, _ in log)
    first_minute = np.array([d for t, _, d in log if t < start + 60]) * 1e3
    whole = np.array([d for _, _, d in log]) * 1e3
    p = {
        "p50_first": float(np.percentile(first_minute, 50)),
        "p99_first": float(np.percentile(first_minute, 99)),
        "p50": float(np.percentile(whole, 50)),
        "p99": float(np.percentile(whole, 99)),
    }
    errors = sum(n for s, n in statuses.items() if s >= 500 or s < 0)
    growth = rss["end"] / rss["warm"] - 1
    report(
        "soak",
        [
            {
                "figure": "RSS MiB at the end (ratio: warm/end)",
                "ours": rss["end"],
                "reference": rss["warm"],
                "ratio": rss["warm"] / rss["end"],
                "target": 1 / 1.1,
                "reference_is": "RSS after the first minute",
            },
            {
                "figure": "p50 ms, whole run",
                "ours": p["p50"],
                "reference": p["p50_first"],
                "ratio": p["p50_first"] / p["p50"],
                "target": 0.0,
                "reference_is": "p50 of the first minute",
            },
            {
                "figure": "p99 ms, whole run",
                "ours": p["p99"],
                "reference": p["p99_first"],
                "ratio": p["p99_first"] / p["p99"],
                "target": 0.0,
                "reference_is": "p99 of the first minute",
            },
            {
                "figure": "5xx and transport errors",
                "ours": errors,
                "reference": 0,
                "ratio": float(errors == 0),
                "target": 1.0,
                "reference_is": "none allowed",
            },
        ],  # fmt: skip
        {
            "minutes": args.minutes,
            "requests": len(log),
            "requests_per_s": round(len(log) / (args.minutes * 60), 1),
            "statuses": dict(sorted(statuses.items())),
            "publishes": published[0],
            "rss_launch_mib": round(rss["launch"], 1),
            "concurrency": args.concurrency,
        },
    )
    if errors or growth > 0.10:
        raise SystemExit(f"soak failed: {errors} 5xx/transport errors, RSS growth {growth:+.1%} (limit +10%)")
    print(f"soak passed: no 5xx, RSS {rss['warm']:.1f} -> {rss['end']:.1f} MiB ({growth:+.1%})")


if __name__ == "__main__":
    main()
