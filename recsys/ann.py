"""Approximate top-k by inner product (faiss IVF-Flat) for catalogues past the exact threshold.

Same contract as ``recsys.metrics.topk_with_exclusions``: (indices [n, k] int64 with -1 padding,
scores [n, k] float32), best first, excluded items never returned. Recall against the exact
top-k depends on ``nprobe`` (lists searched per query) and is measured in ``benchmarks.topk``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np


class IVFIndex:
    """An IVF-Flat inner-product index over the item vectors."""

    def __init__(self, item_vectors: np.ndarray, nlist: int | None = None, nprobe: int = 32, seed: int = 0) -> None:
        import faiss

        items = np.ascontiguousarray(item_vectors, dtype=np.float32)
        n, d = items.shape
        self.nlist = int(nlist or max(1, min(4 * int(np.sqrt(n)), n // 39)))  # faiss wants >= 39 points per list
        faiss.omp_set_num_threads(os.cpu_count() or 1)
        quantizer = faiss.IndexFlatIP(d)
        self.index = faiss.IndexIVFFlat(quantizer, d, self.nlist, faiss.METRIC_INNER_PRODUCT)
        rng = np.random.default_rng(seed)
        train = items if n <= 256 * self.nlist else items[rng.choice(n, 256 * self.nlist, replace=False)]
        self.index.train(train)
        self.index.add(items)
        self.index.nprobe = min(nprobe, self.nlist)
        self.quantizer = quantizer  # keep a reference: the IVF index does not own it

    def search(
        self, user_vectors: np.ndarray, k: int, exclude: Sequence[np.ndarray] | None = None, block_size: int = 4096
    ) -> tuple[np.ndarray, np.ndarray]:
        n_users, n_items = len(user_vectors), self.index.ntotal
        k = min(k, n_items)
        idx_out = np.full((n_users, k), -1, np.int64)
        sc_out = np.full((n_users, k), -np.inf, np.float32)
        for s in range(0, n_users, block_size):
            e = min(s + block_size, n_users)
            excl = exclude[s:e] if exclude is not None else [np.zeros(0, np.int64)] * (e - s)
            extra = max((len(x) for x in excl), default=0)
            k_search = min(n_items, k + extra)
            scores, idx = self.index.search(np.ascontiguousarray(user_vectors[s:e], np.float32), k_search)
            keep = idx >= 0
            if extra:
                # (row, item) pairs as one int64 key each, so the exclusion test is one vectorised isin
                lens = np.fromiter((len(x) for x in excl), np.int64, count=len(excl))
                banned = np.repeat(np.arange(e - s, dtype=np.int64), lens) * n_items + np.concatenate(
                    [np.asarray(x, np.int64) for x in excl]
                )
                keep &= ~np.isin(np.arange(e - s, dtype=np.int64)[:, None] * n_items + idx, banned)
            order = np.argsort(~keep, axis=1, kind="stable")[:, :k]  # kept entries first, in score order
            kept = np.take_along_axis(keep, order, axis=1)
            idx_out[s:e] = np.where(kept, np.take_along_axis(idx, order, axis=1), -1)
            sc_out[s:e] = np.where(kept, np.take_along_axis(scores, order, axis=1), -np.inf)
        return idx_out, sc_out


def recall_against_exact(approx: np.ndarray, exact: np.ndarray) -> float:
    """Mean over rows of |approx ∩ exact| / |exact| (ignoring -1 padding)."""
    hits = total = 0
    for a, x in zip(approx, exact, strict=True):
        xs = set(x[x >= 0].tolist())
        hits += len(xs & set(a[a >= 0].tolist()))
        total += len(xs)
    return hits / max(total, 1)
