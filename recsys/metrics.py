"""Ranking metrics on held-out data, and exact top-k scoring with exclusions.

Conventions (binary relevance, one ranked list per user):
* Recall@K = |top-K ∩ relevant| / |relevant|
* NDCG@K = DCG@K / IDCG@K, DCG = sum over hits of 1 / log2(rank + 1) (rank from 1),
  IDCG = the DCG of min(|relevant|, K) hits at the top.
* HitRate@K = 1 if any relevant item is in the top K, else 0.
* MRR@K = 1 / rank of the first relevant item in the top K, 0 if none.
Beyond accuracy, over all users' top-K lists together:
* coverage@K = distinct recommended items / catalogue size.
* novelty@K = mean self-information -log2 p(i) of recommended items, p(i) = (train events of i
  + 1) / (train events + catalogue size) (add-one smoothed, so unseen items are finite).
* popularity@K (average recommendation popularity) = mean train events of recommended items.
Users with no relevant items are not evaluated (the caller decides who is); each metric is
reported with its mean and standard error over evaluated users.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import numpy as np


def recall_at_k(ranked: Sequence[int], relevant: set[int], k: int) -> float:
    if not relevant:
        raise ValueError("recall is undefined for a user with no relevant items")
    hits = sum(1 for item in list(ranked)[:k] if item in relevant)
    return hits / len(relevant)


def ndcg_at_k(ranked: Sequence[int], relevant: set[int], k: int) -> float:
    if not relevant:
        raise ValueError("NDCG is undefined for a user with no relevant items")
    dcg = sum(1.0 / np.log2(r + 2) for r, item in enumerate(list(ranked)[:k]) if item in relevant)
    idcg = sum(1.0 / np.log2(r + 2) for r in range(min(len(relevant), k)))
    return float(dcg / idcg)


def hit_rate_at_k(ranked: Sequence[int], relevant: set[int], k: int) -> float:
    return float(any(item in relevant for item in list(ranked)[:k]))


def mrr_at_k(ranked: Sequence[int], relevant: set[int], k: int) -> float:
    for rank, item in enumerate(list(ranked)[:k], start=1):
        if item in relevant:
            return 1.0 / rank
    return 0.0


def mean_and_stderr(values: Sequence[float]) -> tuple[float, float]:
    arr = np.asarray(values, dtype=np.float64)
    if len(arr) == 0:
        return float("nan"), float("nan")
    se = float(arr.std(ddof=1) / np.sqrt(len(arr))) if len(arr) > 1 else 0.0
    return float(arr.mean()), se


def evaluate_rankings(ranked: np.ndarray, relevant: Sequence[set[int]], k: int) -> dict[str, float]:
    """ranked: [n_users, >=k] item indices, best first; relevant: one set per user (non-empty)."""
    if ranked.shape[0] != len(relevant):
        raise ValueError(f"{ranked.shape[0]} ranked lists for {len(relevant)} users")
    out: dict[str, float] = {}
    for name, fn in (("recall", recall_at_k), ("ndcg", ndcg_at_k), ("hitrate", hit_rate_at_k), ("mrr", mrr_at_k)):
        mean, se = mean_and_stderr([fn(r, rel, k) for r, rel in zip(ranked, relevant, strict=True)])
        out[f"{name}@{k}"], out[f"{name}@{k}_se"] = mean, se
    out["users"] = len(relevant)
    return out


def beyond_accuracy(ranked: np.ndarray, train_counts: np.ndarray, k: int) -> dict[str, float]:
    """coverage@K, novelty@K and popularity@K of the top-K lists (see the module docstring).

    ranked: [n_users, >=k] item indices (-1 = no item); train_counts: [n_items] train events.
    """
    top = ranked[:, :k]
    items = top[top >= 0]
    n_items = len(train_counts)
    if len(items) == 0:
        return {f"coverage@{k}": 0.0, f"novelty@{k}": float("nan"), f"popularity@{k}": float("nan")}
    p = (train_counts + 1.0) / (train_counts.sum() + n_items)
    return {
        f"coverage@{k}": len(np.unique(items)) / n_items,
        f"novelty@{k}": float(np.mean(-np.log2(p[items]))),
        f"popularity@{k}": float(np.mean(train_counts[items])),
    }


def mask_excluded(scores: np.ndarray, exclude: Sequence[np.ndarray]) -> None:
    """Set row i's columns ``exclude[i]`` of a C-contiguous [b, n] score block to -inf, in place."""
    lens = np.fromiter((len(e) for e in exclude), np.int64, count=len(exclude))
    if lens.sum():
        flat = np.concatenate([np.asarray(e, np.int64) for e in exclude]) + np.repeat(
            np.arange(len(exclude), dtype=np.int64) * scores.shape[1], lens
        )
        scores.reshape(-1)[flat] = -np.inf


def topk_from_scores(
    scores: np.ndarray, k: int, exclude: Sequence[np.ndarray] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k of a dense [b, n_items] score block (modified in place where excluded).

    Returns (indices [b, k'] int64, scores [b, k'] float32), best first (equal scores: lower index
    first, also at the cut), k' = min(k, n_items); where a row has fewer than k' items left, its
    tail holds -1 with score -inf. NaN scores are never selected. Compiled: ``recsys.kernels``.
    """
    from recsys.kernels import topk_rows

    b, n_items = scores.shape
    k = min(k, n_items)
    if k <= 0:
        raise ValueError(f"k must be positive, got {k}")
    scores = np.ascontiguousarray(scores, dtype=np.float32)
    if exclude is not None:
        mask_excluded(scores, exclude)
    idx = np.empty((b, k), np.int64)
    sc = np.empty((b, k), np.float32)
    topk_rows(scores, k, idx, sc)
    return idx, sc


def topk_with_exclusions(
    user_vectors: np.ndarray,
    item_vectors: np.ndarray,
    k: int,
    exclude: Sequence[np.ndarray] | None = None,
    block_size: int = 2048,
    workers: int | None = None,
    memory_budget_bytes: int = 512 << 20,
    cache_block_bytes: int = 16 << 20,
    add_scores: Callable[[int, int], np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k by dot product, in blocks of users to bound memory.

    user_vectors: [n_users, d]; item_vectors: [n_items, d]; exclude: per user, item indices
    that must not be returned (already watched). Returns (indices [n_users, k'] int64,
    scores [n_users, k'] float32), best first, k' = min(k, n_items). Where a user has fewer
    than k' items left, the tail holds -1 with score -inf.

    Blocks run on ``workers`` threads (default: CPU count), each a single-threaded BLAS matmul
    followed by the selection, so selection on one core overlaps the matmul on another. Score
    blocks are sized so that all workers together hold at most ``memory_budget_bytes``.
    ``add_scores(start, stop)``, when given, returns [stop - start, n_items] scores added to those
    users' dot products (a per-user term, e.g. freshness at each user's own reference time).
    """
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_limits

    n_users, n_items = len(user_vectors), len(item_vectors)
    if min(k, n_items) <= 0:
        raise ValueError(f"k must be positive, got {k}")
    k = min(k, n_items)
    workers = max(1, workers or os.cpu_count() or 1)
    # Rows per block: at most block_size and within the memory budget; below that, about
    # cache_block_bytes of scores (the selection then reads them from cache: 20k x 20k ran at
    # 30.0k users/s with 16 MB blocks, 26.1k with 64 MB, 24.5k with 4 MB), but never under 64 rows,
    # where the matmul itself slows down (250k items: 2,100 users/s at 64+ rows, 1,400 at 16).
    budget_rows = memory_budget_bytes // max(1, 4 * n_items * workers)
    block = int(max(1, min(block_size, budget_rows, max(64, cache_block_bytes // max(1, 4 * n_items)))))
    idx_out = np.empty((n_users, k), np.int64)
    score_out = np.empty((n_users, k), np.float32)
    items_t = np.ascontiguousarray(item_vectors.T, dtype=np.float32)

    def run_block(start: int) -> None:
        stop = min(start + block, n_users)
        scores = user_vectors[start:stop].astype(np.float32) @ items_t  # [b, n_items]
        if add_scores is not None:
            scores += add_scores(start, stop)
        excl = exclude[start:stop] if exclude is not None else None
        idx_out[start:stop], score_out[start:stop] = topk_from_scores(scores, k, excl)

    starts = range(0, n_users, block)
    if workers == 1 or len(starts) == 1:
        for start in starts:
            run_block(start)
    else:
        with threadpool_limits(1, "blas"), ThreadPoolExecutor(workers, thread_name_prefix="topk") as pool:
            list(pool.map(run_block, starts))  # list() re-raises a worker's exception here
    return idx_out, score_out


def per_user_ndcg(ranked: np.ndarray, relevant: Sequence[set[int]], k: int) -> np.ndarray:
    """[n_users] NDCG@k of each user's list (the values ``evaluate_rankings`` averages)."""
    if ranked.shape[0] != len(relevant):
        raise ValueError(f"{ranked.shape[0]} ranked lists for {len(relevant)} users")
    n = len(relevant)
    sizes = np.fromiter((len(r) for r in relevant), np.int64, count=n)
    if (sizes == 0).any():
        raise ValueError("NDCG is undefined for a user with no relevant items")
    top = np.asarray(ranked, np.int64)[:, :k]
    if n == 0 or top.shape[1] == 0:
        return np.zeros(n, np.float64)
    # (user, item) pairs as one integer each: a ranked pair is a hit where it is a relevant pair
    rel_items = np.fromiter((i for r in relevant for i in r), np.int64, count=int(sizes.sum()))
    span = int(max(top.max(), rel_items.max() if len(rel_items) else 0)) + 2
    rel_keys = np.repeat(np.arange(n, dtype=np.int64), sizes) * span + rel_items
    ranked_keys = np.arange(n, dtype=np.int64)[:, None] * span + np.where(top >= 0, top, span - 1)
    discount = 1.0 / np.log2(np.arange(top.shape[1]) + 2.0)
    dcg = (np.isin(ranked_keys, rel_keys) * discount).sum(axis=1)
    ideal = np.concatenate([[0.0], np.cumsum(1.0 / np.log2(np.arange(k) + 2.0))])
    return dcg / ideal[np.minimum(sizes, k)]


def paired_bootstrap(
    a: np.ndarray, b: np.ndarray, n_boot: int = 2000, level: float = 0.95, seed: int = 0
) -> dict[str, float]:
    """Mean of the per-user differences ``a - b`` (same users, same order) and its percentile
    bootstrap interval: users are resampled with replacement ``n_boot`` times (seeded, so the
    interval is reproducible) and the interval holds the central ``level`` of the resampled means.

    Returns {"mean_diff", "lo", "hi", "users", "level", "resamples"}; with no users, NaNs."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired samples differ in shape: {a.shape} vs {b.shape}")
    d = a - b
    n = len(d)
    if n == 0:
        return {"mean_diff": float("nan"), "lo": float("nan"), "hi": float("nan"), "users": 0, "level": level,
                "resamples": n_boot}  # fmt: skip
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot)
    for s in range(0, n_boot, 256):  # in chunks: n_boot x n indices at once can be large
        idx = rng.integers(0, n, size=(min(256, n_boot - s), n))
        means[s : s + len(idx)] = d[idx].mean(axis=1)
    tail = (1.0 - level) / 2.0
    lo, hi = np.quantile(means, [tail, 1.0 - tail], method="inverted_cdf")
    return {"mean_diff": float(d.mean()), "lo": float(lo), "hi": float(hi), "users": n, "level": level,
            "resamples": n_boot}  # fmt: skip
