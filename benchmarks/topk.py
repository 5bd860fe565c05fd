"""Batch top-k (exact, with per-user exclusions) next to a plain float32 GEMM of the same shape.

    python -m benchmarks.topk [--users N] [--items N] [--dim D] [--k K]

The GEMM is the floor: top-k must compute every user x item score. Target: >= 0.5 of its rate.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from benchmarks._report import report
from recsys.metrics import topk_with_exclusions


def best_of(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=20_000)
    ap.add_argument("--items", type=int, default=20_000)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--watched", type=int, default=50, help="excluded items per user")
    args = ap.parse_args()

    rng = np.random.default_rng(0)
    users = rng.normal(size=(args.users, args.dim)).astype(np.float32)
    items = rng.normal(size=(args.items, args.dim)).astype(np.float32)
    exclude = [rng.integers(0, args.items, args.watched) for _ in range(args.users)]
    block = 2048

    def gemm() -> None:
        items_t = np.ascontiguousarray(items.T)
        for s in range(0, args.users, block):
            _ = users[s : s + block] @ items_t

    t_gemm = best_of(gemm)
    t_topk = best_of(lambda: topk_with_exclusions(users, items, args.k, exclude, block_size=block))
    rate_gemm, rate_topk = args.users / t_gemm, args.users / t_topk
    report(
        "topk",
        [
            {
                "figure": "users scored per second",
                "ours": rate_topk,
                "reference": rate_gemm,
                "ratio": rate_topk / rate_gemm,
                "target": 0.5,
                "reference_is": "the same blocks' float32 GEMM alone (numpy/BLAS)",
            }
        ],
        {"users": args.users, "items": args.items, "dim": args.dim, "k": args.k, "block": block},
    )


if __name__ == "__main__":
    main()
