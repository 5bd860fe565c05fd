"""Batch top-k (exact, with per-user exclusions) next to a plain float32 GEMM of the same shape.

    python -m benchmarks.topk [--users N] [--items N] [--dim D] [--k K]

The GEMM is the floor: top-k must compute every user x item score. Target: >= 0.5 of its rate.
Also the faiss IVF index (used by publish from 250,000 videos): its rate against exact top-k and
its recall@k against exact top-k, on clustered vectors. And the choices made on validation after
every tuning trial, each next to one exact ranking of the same validation users (the floor: a
choice ranks everyone at least once): new-video scoring over 63 layouts
(``rank_new_video_variants``) and the content prior's weight over 5 factors (``rank_query_variants``).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np

from benchmarks._gemm import fastest_blocked_gemm
from benchmarks._report import report
from recsys.ann import IVFIndex, recall_against_exact
from recsys.kernels import warm_up
from recsys.metrics import topk_with_exclusions
from recsys.retrieval import Catalogue, rank, rank_new_video_variants, rank_query_variants
from recsys.scoring import ScoreLayout


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
    ap.add_argument("--validation-users", type=int, default=7_000)
    ap.add_argument("--validation-items", type=int, default=10_000)
    ap.add_argument("--new-share", type=float, default=0.3, help="share of videos without training events")
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
    t_one, t_new, t_prior = validation_choices(args, rng)
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
            {
                "figure": "new-video scoring, 63 layouts (s)",
                "ours": t_new,
                "reference": t_one,
                "ratio": t_one / t_new,
                "target": 0.2,
                "reference_is": f"one exact ranking of {args.validation_users} users with freshness",
            },
            {
                "figure": "content prior weight, 5 factors (s)",
                "ours": t_prior,
                "reference": t_one,
                "ratio": t_one / t_prior,
                "target": 0.2,
                "reference_is": "the same ranking",
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
            "validation_users": args.validation_users,
            "validation_items": args.validation_items,
            "new_share": args.new_share,
        },
    )


def validation_choices(args: argparse.Namespace, rng: np.random.Generator) -> tuple[float, float, float]:
    """Seconds of (one exact ranking, new-video scoring over 63 layouts, the prior weight over 5
    factors) of ``--validation-users`` queries over ``--validation-items`` rows in the trained
    layout (64 embedding columns, a bias with freshness, 64 content-prior columns), top 10."""
    n, m = args.validation_users, args.validation_items
    layout = ScoreLayout(dim=64, bias=True, content_dim=64, freshness=tuple(np.linspace(0.5, -1.0, 20)))
    rows = rng.normal(size=(m, layout.total)).astype(np.float32)
    queries = rng.normal(size=(n, layout.total)).astype(np.float32)
    queries[:, layout.bias_col] = 1.0
    day = 86400.0
    catalogue = Catalogue(rows, layout, rng.uniform(0, 60 * day, m), np.zeros(m, bool))
    now = rng.uniform(50 * day, 60 * day, n)
    exclude = [rng.integers(0, m, 5) for _ in range(n)]
    new = rng.random(m) < args.new_share
    layouts = [
        replace(layout, new_video_scale=s, new_video_offset=o, new_video_prior=p)
        for s in (1.0, 0.3, 0.1)
        for o in (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0)
        for p in (1.0, 2.0, 4.0)
    ]
    t_one = best_of(lambda: rank(queries, catalogue, 10, exclude, now=now), repeats=1)
    t_new = best_of(lambda: rank_new_video_variants(queries, catalogue, new, layouts, 10, exclude, now=now), 1)
    factors = (1.0, 0.25, 0.5, 2.0, 4.0)
    t_prior = best_of(
        lambda: rank_query_variants(queries, catalogue, layout.content_cols, factors, 10, exclude, now=now), 1
    )
    return t_one, t_new, t_prior


if __name__ == "__main__":
    main()
