"""redis-benchmark as the reference, on keys of its own (``vidrec:bench-raw:*``, removed after).

Its built-in tests write ``key:*`` keys into whatever database they use; custom commands with
``__rand_int__`` keep the reference on the same kind of key and value as ours and easy to clean.
"""

from __future__ import annotations

import subprocess

import httpx
import redis

from cache.writer import unlink_matching

RAW_PREFIX = "vidrec:bench-raw:"


def _run(url: str, args: list[str]) -> dict[str, float]:
    u = httpx.URL(url)
    out = subprocess.run(
        ["redis-benchmark", "-h", u.host, "-p", str(u.port or 6379), "--csv", *args],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    header, *rows = [line.replace('"', "").split(",") for line in out.strip().splitlines()]
    row = dict(zip(header, rows[-1], strict=True))
    return {"rps": float(row["rps"]), "p50_ms": float(row["p50_latency_ms"]), "p99_ms": float(row["p99_latency_ms"])}


def raw_set(url: str, value_bytes: int, requests: int, keyspace: int, pipeline: int = 1, clients: int = 1):  # type: ignore[no-untyped-def]
    value = "x" * value_bytes
    return _run(
        url,
        ["-n", str(requests), "-r", str(keyspace), "-P", str(pipeline), "-c", str(clients),
         "SET", f"{RAW_PREFIX}__rand_int__", value],
    )  # fmt: skip


def raw_get(url: str, requests: int, keyspace: int, clients: int):  # type: ignore[no-untyped-def]
    return _run(url, ["-n", str(requests), "-r", str(keyspace), "-c", str(clients), "GET", f"{RAW_PREFIX}__rand_int__"])


def cleanup(url: str) -> None:
    client = redis.Redis.from_url(url)
    unlink_matching(client, f"{RAW_PREFIX}*", 5000)
    client.close()
