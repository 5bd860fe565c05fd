"""Publish at catalogue scale: batch top-k and the Redis write, with wall time, peak memory and
Redis memory, each next to its reference from the same run.

    python -m benchmarks.publish [--users 100000] [--items 100000] [--dim 64] [--k 100]

* top-k: exact blocked top-k (``recsys.metrics.topk_with_exclusions``, 20 watched videos
  excluded per user) next to the float32 GEMM of the same shape alone.
* peak memory: the process's peak RSS growth during top-k, next to the size the full
  users x items score matrix would take.
* publish rate: ``publish_version`` from the top-k index matrix, as the nightly job calls it
  (encode in numpy, pipelined SET with TTL in batches of 1,000, verify, flip), users per second, next to ``redis-benchmark`` pipelined SET (-P 1000) of the same
  value size. Target (issue 5): >= 0.5.
* Redis memory: growth of ``used_memory`` after publish, next to the raw bytes of the values.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import redis

from benchmarks._gemm import fastest_blocked_gemm
from benchmarks._redis import cleanup, raw_set
from benchmarks._report import report
from cache.client import DEFAULT_REDIS_URL
from cache.packed import VocabBytes
from cache.packed import warm_up as warm_up_cache
from cache.writer import TopKMatrix, publish_version, unlink_matching
from pipelines.redis_server import ensure_redis
from recsys.kernels import warm_up
from recsys.metrics import topk_with_exclusions

NS = "bench-publish"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: kilobytes


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=100_000)
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--fixed-width-ids", action="store_true", help="ids of one length (v000123), not 0..N")
    ap.add_argument("--cluster", action="store_true", help="also publish to a 3-master Redis Cluster started here")
    args = ap.parse_args()
    if shutil.which("redis-benchmark") is None:
        sys.exit("benchmarks.publish needs `redis-benchmark` on PATH (Debian: apt install redis-tools)")

    rng = np.random.default_rng(0)
    users = rng.normal(size=(args.users, args.dim)).astype(np.float32)
    items = rng.normal(size=(args.items, args.dim)).astype(np.float32)
    exclude = [rng.integers(0, args.items, 20) for _ in range(args.users)]

    # top-k first: ru_maxrss is the process's peak, so the GEMM reference (blocks of up to 2048
    # rows of full scores) must not run before it or it would hide the growth top-k causes.
    warm_up()  # compiled kernels: not timed
    warm_up_cache()
    rss_before = peak_rss_mb()
    t0 = time.perf_counter()
    idx, scores = topk_with_exclusions(users, items, args.k, exclude)
    t_topk = time.perf_counter() - t0
    rss_growth = max(peak_rss_mb() - rss_before, 1e-3)

    gemm_block, t_gemm = fastest_blocked_gemm(users, items)

    # ids of varying length (1-6 digits, as MovieLens'), or zero-padded to one length
    item_ids = [f"v{i:06d}" if args.fixed_width_ids else str(i) for i in range(args.items)]
    t0 = time.perf_counter()
    topk = TopKMatrix([f"u{i}" for i in range(args.users)], VocabBytes(item_ids), idx, scores)
    t_vocab = time.perf_counter() - t0

    redis_url = os.environ.get("VIDREC_REDIS_URL", DEFAULT_REDIS_URL)
    ensure_redis(redis_url, Path("var/state"))
    client = redis.Redis.from_url(redis_url, socket_timeout=60)
    unlink_matching(client, f"vidrec:{NS}:*", 5000)
    mem_before = int(client.info("memory")["used_memory"])
    t0 = time.perf_counter()
    meta = publish_version(client, NS, "bench-1", topk, (item_ids[:100], [1.0] * 100), ttl_seconds=3600)
    t_publish = time.perf_counter() - t0
    mem_growth = int(client.info("memory")["used_memory"]) - mem_before
    value_bytes = int(round(float(meta["bytes_per_user_list"])))

    try:
        raw_rps = raw_set(redis_url, value_bytes, args.users, args.users, pipeline=1000)["rps"]
    finally:
        cleanup(redis_url)
        unlink_matching(client, f"vidrec:{NS}:*", 5000)
    cluster_rows = cluster_figures(topk, item_ids, args.users / t_publish) if args.cluster else []

    report(
        "publish-cluster" if args.cluster else "publish-fixed-width-ids" if args.fixed_width_ids else "publish",
        [
            *cluster_rows,
            {
                "figure": "publish users per second",
                "ours": args.users / t_publish,
                "reference": raw_rps,
                "ratio": args.users / t_publish / raw_rps,
                "target": 0.5,
                "reference_is": f"redis-benchmark SET -P 1000 -c 1, {value_bytes}-byte values, same key count",
            },
            {
                "figure": "top-k wall seconds (ratio GEMM/ours)",
                "ours": t_topk,
                "reference": t_gemm,
                "ratio": t_gemm / t_topk,
                "target": 0.5,
                "reference_is": f"float32 GEMM of the same shape alone, fastest row blocks ({gemm_block})",
            },
            {
                "figure": "top-k peak RSS growth MB",
                "ours": rss_growth,
                "reference": args.users * args.items * 4 / 2**20,
                "ratio": args.users * args.items * 4 / 2**20 / rss_growth,
                "target": 1.0,
                "reference_is": "the full users x items float32 score matrix",
            },
            {
                "figure": "Redis used_memory growth MB",
                "ours": mem_growth / 2**20,
                "reference": float(meta["bytes"]) / 2**20,
                "ratio": float(meta["bytes"]) / max(mem_growth, 1),
                "target": 0.0,
                "reference_is": "raw bytes of the values written",
            },
        ],
        {
            "users": args.users,
            "items": args.items,
            "dim": args.dim,
            "k": args.k,
            "bytes_per_user_list": value_bytes,
            "ids": "fixed width (v000123)" if args.fixed_width_ids else "0..N, 1-6 characters",
            "vocabulary bytes s": round(t_vocab, 2),
            "publish s": round(t_publish, 1),
            "cpus": os.cpu_count(),
        },
    )


def cluster_figures(topk: TopKMatrix, item_ids: list[str], single_rps: float) -> list[dict[str, object]]:
    """Publish the same lists to a private 3-master Redis Cluster (started and stopped here):
    users per second next to the single Redis of the same run."""
    from cache.writer import connect
    from pipelines.redis_server import private_cluster

    with private_cluster(Path("var/state/bench-cluster")) as (url, _):
        client = connect(url)
        t0 = time.perf_counter()
        publish_version(client, NS, "bench-1", topk, (item_ids[:100], [1.0] * 100), ttl_seconds=3600)
        rps = len(topk.user_ids) / (time.perf_counter() - t0)
        client.close()
    return [
        {
            "figure": "publish users/s, 3-master cluster",
            "ours": rps,
            "reference": single_rps,
            "ratio": rps / single_rps,
            "target": 0.8,
            "reference_is": "the same publish to one Redis, same run",
        }
    ]


if __name__ == "__main__":
    main()
