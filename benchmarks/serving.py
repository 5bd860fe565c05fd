"""API cache-hit throughput and latency next to raw Redis GETs of the same payload.

    python -m benchmarks.serving [--users N] [--concurrency C] [--seconds S] [--workers W]

1. Publishes ``--users`` lists of 100 items (the nightly job's list length) to a ``bench``
   namespace of the Redis at ``VIDREC_REDIS_URL`` (started by the project if none answers).
2. Starts the API (uvicorn, ``--workers`` processes, uvloop + httptools) on a free port and
   drives ``GET /v1/users/{random user}/recommendations?k=20`` with ``wrk`` (C connections,
   1 thread) for S seconds; every answer is a cache hit (checked before the run).
3. Runs ``redis-benchmark`` GET with the same value size and the same number of connections.

Targets (issue 5): API throughput >= 25% of raw Redis; Redis p99 / API p99 >= 0.5. wrk, the API
and Redis share this machine's cores, so the figures are a lower bound for a dedicated server.
``--server granian`` runs the same app under granian (Rust HTTP, single-threaded runtime) instead of
uvicorn (uvloop + httptools). Needs ``wrk`` (Debian: ``apt install wrk``) and ``redis-benchmark`` (package redis-tools).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import redis

from benchmarks._redis import cleanup, raw_get, raw_set
from benchmarks._report import report
from cache import keys
from cache.client import DEFAULT_REDIS_URL
from cache.writer import TopK, connect, publish_version, unlink_matching
from pipelines.redis_server import ensure_redis

NS = "bench"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def publish(client: redis.Redis, users: int) -> int:
    rng = np.random.default_rng(0)
    ids = [f"v{i:06d}" for i in range(20_000)]
    lists = [[ids[j] for j in rng.choice(len(ids), 100, replace=False)] for _ in range(users)]
    scores = [sorted(rng.random(100).tolist(), reverse=True) for _ in range(users)]
    topk = TopK([f"u{i}" for i in range(users)], lists, scores)
    publish_version(client, NS, "bench-1", topk, (ids[:100], [1.0] * 100), ttl_seconds=3600)
    return len(client.get(keys.user_key(NS, "bench-1", "u0")))


# The API's own ASGI app under either server. `vidrec serve` runs uvicorn: on this machine granian
# answered ~20% more requests per second but with a p99 ten times worse (see the closing notes).
SERVERS = {
    "uvicorn": lambda port, workers: [
        sys.executable, "-m", "uvicorn", "serving.app:create_app", "--factory", "--host", "127.0.0.1",
        "--port", str(port), "--workers", str(workers), "--log-level", "warning", "--no-access-log",
        "--loop", "uvloop", "--http", "serving.http:CoalescingHttpToolsProtocol", "--no-proxy-headers",
    ],
    "uvicorn-stock": lambda port, workers: [
        sys.executable, "-m", "uvicorn", "serving.app:create_app", "--factory", "--host", "127.0.0.1",
        "--port", str(port), "--workers", str(workers), "--log-level", "warning", "--no-access-log",
        "--loop", "uvloop", "--http", "httptools",
    ],
    "granian": lambda port, workers: [
        sys.executable, "-m", "granian", "--interface", "asgi", "--factory", "--host", "127.0.0.1",
        "--port", str(port), "--workers", str(workers), "--loop", "uvloop", "--log-level", "warning",
        "--no-access-log", "serving.app:create_app",
        "--runtime-threads", "1", "--runtime-mode", "st", "--blocking-threads", "1",
    ],
}  # fmt: skip


def parse_ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def run_wrk(url: str, users: int, connections: int, seconds: int) -> dict[str, float]:
    script = (
        "math.randomseed(7)\n"
        "request = function()\n"
        f'  return wrk.format("GET", "/v1/users/u" .. math.random(0, {users - 1}) .. "/recommendations?k=20")\n'
        "end\n"
    )
    return run_wrk_script(url, script, connections, seconds)


def run_wrk_script(url: str, script: str, connections: int, seconds: int) -> dict[str, float]:
    """wrk (one thread, ``connections``, ``seconds``) with a Lua ``script`` choosing each request:
    requests/s and p50/p99 latency; raises on any non-2xx answer or socket error."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
    try:
        out = subprocess.run(
            ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", f.name, url],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
    finally:
        os.unlink(f.name)
    if "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"wrk saw errors:\n{out}")
    pct = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", out, re.M))
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "p50_ms": parse_ms(pct["50"]),
        "p99_ms": parse_ms(pct["99"]),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=10_000)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--server", choices=sorted(SERVERS), default="uvicorn")
    ap.add_argument("--cluster", action="store_true", help="also serve from a 3-master Redis Cluster started here")
    args = ap.parse_args()
    for tool in ("wrk", "redis-benchmark"):
        if shutil.which(tool) is None:
            sys.exit(f"benchmarks.serving needs `{tool}` on PATH (Debian: apt install wrk redis-tools)")

    redis_url = os.environ.get("VIDREC_REDIS_URL", DEFAULT_REDIS_URL)
    ensure_redis(redis_url, Path("var/state"))
    client = redis.Redis.from_url(redis_url)
    payload = publish(client, args.users)

    ours = drive_api(redis_url, args)
    cluster_rows = cluster_figures(args, ours) if args.cluster else []
    try:
        raw_set(redis_url, payload, args.users, args.users, pipeline=100)
        raw = raw_get(redis_url, 200_000, args.users, args.concurrency)
    finally:
        cleanup(redis_url)
        unlink_matching(client, f"vidrec:{NS}:*", 5000)
    report(
        "serving"
        + ("" if args.server == "uvicorn" else f"-{args.server}")
        + ("" if args.workers == 1 else f"-{args.workers}w")
        + ("-cluster" if args.cluster else ""),
        [
            *cluster_rows,
            {
                "figure": "cache-hit requests per second",
                "ours": ours["rps"],
                "reference": raw["rps"],
                "ratio": ours["rps"] / raw["rps"],
                "target": 0.25,
                "reference_is": f"redis-benchmark GET of {payload}-byte values, random keys",
            },
            {
                "figure": "p99 latency ms (ratio: Redis/API)",
                "ours": ours["p99_ms"],
                "reference": raw["p99_ms"],
                "ratio": raw["p99_ms"] / ours["p99_ms"],
                "target": 0.5,
                "reference_is": "redis-benchmark GET p99, same concurrency",
            },
            {
                "figure": "p50 latency ms (ratio: Redis/API)",
                "ours": ours["p50_ms"],
                "reference": raw["p50_ms"],
                "ratio": raw["p50_ms"] / ours["p50_ms"],
                "target": 0.0,
                "reference_is": "redis-benchmark GET p50, same concurrency",
            },
        ],
        {
            "server": f"{args.server} {args.workers} worker(s), uvloop",
            "client": "wrk -t1",
            "concurrency": args.concurrency,
            "users": args.users,
            "value_bytes": payload,
            "cpus": os.cpu_count(),
        },
    )


def redis_pids(url: str) -> list[int]:
    """The process ids of the Redis server(s) behind ``url`` (each node's, for a cluster)."""
    from cache.cluster import is_cluster_url

    if not is_cluster_url(url):
        return [int(redis.Redis.from_url(url).info("server")["process_id"])]
    client = connect(url)
    try:
        return [int(client.get_redis_connection(n).info("server")["process_id"]) for n in client.get_primaries()]
    finally:
        client.close()


def cpu_seconds(pids: list[int]) -> float:
    import psutil

    total = 0.0
    for pid in pids:
        proc = psutil.Process(pid)
        for p in [proc, *proc.children(recursive=True)]:
            t = p.cpu_times()
            total += t.user + t.system
    return total


def drive_api(redis_url: str, args: argparse.Namespace) -> dict[str, float]:
    """Start the API against ``redis_url``, check a cache hit, warm up, then measure with wrk;
    also the CPU seconds the API and the Redis server(s) spent per 1,000 requests of the run."""
    port = free_port()
    env = {**os.environ, "VIDREC_REDIS_URL": redis_url, "VIDREC_NAMESPACE": NS}
    api = subprocess.Popen(SERVERS[args.server](port, args.workers), env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                body = httpx.get(f"{base}/v1/users/u1/recommendations", params={"k": 20}, timeout=1).json()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        assert body["source"] == "cache" and len(body["items"]) == 20, body
        run_wrk(base, args.users, args.concurrency, 2)  # warm-up
        servers = redis_pids(redis_url)
        before = cpu_seconds([api.pid]), cpu_seconds(servers)
        result = run_wrk(base, args.users, args.concurrency, args.seconds)
        after = cpu_seconds([api.pid]), cpu_seconds(servers)
        n = result["rps"] * args.seconds / 1000
        result["api_cpu_ms_per_1k"] = 1000 * (after[0] - before[0]) / n
        result["redis_cpu_ms_per_1k"] = 1000 * (after[1] - before[1]) / n
        return result
    finally:
        api.terminate()
        api.wait(10)


def cluster_figures(args: argparse.Namespace, single: dict[str, float]) -> list[dict[str, object]]:
    """The same lists published to a private 3-master Redis Cluster (started and stopped here)
    and served from it: cache-hit requests per second next to the single Redis of the same run."""
    from pipelines.redis_server import private_cluster

    with private_cluster(Path("var/state/bench-cluster")) as (url, _):
        client = connect(url)
        publish(client, args.users)
        client.close()
        ours = drive_api(url, args)
    print(
        f"CPU ms per 1,000 cache hits: API {single['api_cpu_ms_per_1k']:.0f} on one Redis, "
        f"{ours['api_cpu_ms_per_1k']:.0f} on the cluster; Redis {single['redis_cpu_ms_per_1k']:.0f} (one server), "
        f"{ours['redis_cpu_ms_per_1k']:.0f} (three masters together)"
    )
    return [
        {
            "figure": "cache-hit req/s, 3-master cluster",
            "ours": ours["rps"],
            "reference": single["rps"],
            "ratio": ours["rps"] / single["rps"],
            "target": 0.8,
            "reference_is": "the same API on one Redis, same run",
        }
    ]


if __name__ == "__main__":
    main()
