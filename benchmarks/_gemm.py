"""The plain float32 GEMM that top-k is measured against: users x items^T in row blocks, the
fastest of a few block sizes (small blocks stay in cache, large ones amortise BLAS start-up)."""

from __future__ import annotations

import time

import numpy as np

BLOCKS = (128, 512, 2048)


def fastest_blocked_gemm(users: np.ndarray, items: np.ndarray, repeats: int = 1) -> tuple[int, float]:
    """(row block size, seconds) of the fastest full users x items product over ``BLOCKS``,
    each timed as the best of ``repeats`` runs."""
    items_t = np.ascontiguousarray(items.T)
    timings: dict[int, float] = {}
    for block in BLOCKS:
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            for s in range(0, len(users), block):
                _ = users[s : s + block] @ items_t
            best = min(best, time.perf_counter() - t0)
        timings[block] = best
    block = min(timings, key=timings.__getitem__)
    return block, timings[block]
