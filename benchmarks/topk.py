"""Batch top-k (exact, with per-user exclusions) next to a plain float32 GEMM of the same shape.

    python -m benchmarks.topk [--users N] [--items N] [--dim D] [--k K]

The GEMM is the floor: top-k must compute every user x item score. Target: >= 0.5 of its rate.
Also the faiss IVF index (used by publish from 250,000 videos): its rate against exact top-k and
its recall@k against exact top-k, on clustered vectors.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from benchmarks._gemm import fastest_blocked_gemm
from benchmarks._report import report
from recsys.ann import IVFIndex, recall_against_exact
from recsys.kernels import warm_up
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
    ap.add_argument("--nprobe", type=int, default=32, help="IVF lists searched per query")
    args = ap.parse_args()

    rng = np.random.default_rng(0)
    users = rng.normal(size=(args.users, args.dim)).astype(np.float32)
    items = rng.normal(size=(args.items, args.dim)).astype(np.float32)
    exclude = [rng.integers(0, args.items, args.watched) for _ in range(args.users)]
    warm_up()  # compiled kernels: not timed
    block, t_gemm = fastest_blocked_gemm(users, items, repeats=3)
    t_topk = best_of(lambda: topk_with_exclusions(users, items, args.k, exclude))
    rate_gemm, rate_topk = args.users / t_gemm, args.users / t_topk

    # The approximate index on clustered, L2-normalised vectors (as trained embeddings are;
    # an IVF index cannot beat brute force on structureless Gaussian noise).
    centres = rng.normal(size=(256, args.dim))
    c_items = centres[rng.integers(0, 256, args.items)] + 0.5 * rng.normal(size=(args.items, args.dim))
    c_users = centres[rng.integers(0, 256, args.users)] + 0.5 * rng.normal(size=(args.users, args.dim))
    c_items = (c_items / np.linalg.norm(c_items, axis=1, keepdims=True)).astype(np.float32)
    c_users = (c_users / np.linalg.norm(c_users, axis=1, keepdims=True)).astype(np.float32)
    exact, _ = topk_with_exclusions(c_users, c_items, args.k, exclude)
    t_exact = best_of(lambda: topk_with_exclusions(c_users, c_items, args.k, exclude), repeats=1)
    t0 = time.perf_counter()
    index = IVFIndex(c_items, nprobe=args.nprobe)
    t_build = time.perf_counter() - t0
    t_ann = best_of(lambda: index.search(c_users, args.k, exclude), repeats=1)
    approx, _ = index.search(c_users, args.k, exclude)
    recall = recall_against_exact(approx, exact)
    report(
        "topk",
        [
            {
                "figure": "users scored per second",
                "ours": rate_topk,
                "reference": rate_gemm,
                "ratio": rate_topk / rate_gemm,
                "target": 0.5,
                "reference_is": f"float32 GEMM alone (numpy/BLAS), fastest row blocks ({block})",
            },
            {
                "figure": f"faiss IVF users/s (nprobe {index.index.nprobe})",
                "ours": args.users / t_ann,
                "reference": args.users / t_exact,
                "ratio": t_exact / t_ann,
                "target": 1.0,
                "reference_is": "exact blocked top-k on the same clustered vectors",
            },
            {
                "figure": f"faiss IVF recall@{args.k}",
                "ours": recall,
                "reference": 1.0,
                "ratio": recall,
                "target": 0.9,
                "reference_is": "exact top-k (recall 1 by definition)",
            },
        ],
        {
            "users": args.users,
            "items": args.items,
            "dim": args.dim,
            "k": args.k,
            "block": block,
            "ivf_lists": index.nlist,
            "ivf_build_s": round(t_build, 2),
        },
    )


if __name__ == "__main__":
    main()
