"""The scoring path, written once: query vectors (from a user tower) x the catalogue's item rows
-> the top k with per-user exclusions.

* Exact: blocked matmul and a compiled per-row selection (``recsys.metrics.topk_with_exclusions``);
  from ``ann_min_items`` videos, a faiss IVF index (``recsys.ann``) when nothing is added per user.
* Freshness: an item's bias by its age is folded into the item rows for one time (``at``: publish,
  the API) or added per user at each user's own reference time (``now``: offline evaluation and
  validation, where every user is judged at their own time).

Publish, evaluation, validation during training and the evaluation's new-user cohort all rank
through ``rank``; the API's online scorer ranks one user at a time over the same folded rows
(``recsys.online.scoring_items``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from recsys.metrics import mask_excluded, topk_from_scores, topk_with_exclusions
from recsys.scoring import ScoreLayout, freshness_adder


@dataclass(frozen=True)
class Catalogue:
    """The item side of the score: ``rows`` [n_items, layout.total] (``ScoreLayout``), and each
    video's birth (epoch s; NaN unknown) and whether that birth is its first event."""

    rows: np.ndarray
    layout: ScoreLayout
    birth: np.ndarray | None = None
    birth_from_event: np.ndarray | None = None

    def at(self, now_s: float | None) -> np.ndarray:
        """The rows with each video's freshness at ``now_s`` folded into the bias column."""
        if now_s is None or self.birth is None:
            return self.rows
        return self.layout.fold_freshness(self.rows, self.birth, now_s, self.birth_from_event)

    def per_user(self, now: np.ndarray | None) -> Callable[[int, int], np.ndarray] | None:
        """Freshness at each user's own time, for ``topk_with_exclusions(add_scores=...)``."""
        return freshness_adder(self.layout, now, self.birth, self.birth_from_event)


def top_k(
    queries: np.ndarray,
    items: np.ndarray,
    k: int,
    exclude: Sequence[np.ndarray] | None,
    add_scores: Callable[[int, int], np.ndarray] | None = None,
    ann_min_items: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(indices [n, k] int64, -1 padded; scores [n, k]) best first: exact, or the IVF index once
    there are ``ann_min_items`` items and nothing is added per user."""
    if ann_min_items is not None and len(items) >= ann_min_items and add_scores is None:
        from recsys.ann import IVFIndex

        return IVFIndex(items).search(queries, k, exclude)
    return topk_with_exclusions(queries, items, k, exclude, add_scores=add_scores)


def rank(
    queries: np.ndarray,
    catalogue: Catalogue,
    k: int,
    exclude: Sequence[np.ndarray] | None,
    *,
    now: np.ndarray | None = None,
    at: float | None = None,
    ann_min_items: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Each query's top ``k`` videos, its ``exclude`` left out. ``now`` [n]: judge each user at
    their own time (freshness added per user); else ``at``: everyone at one time (folded); with
    neither, the rows as exported."""
    if now is not None:
        return top_k(queries, catalogue.rows, k, exclude, add_scores=catalogue.per_user(now))
    return top_k(queries, catalogue.at(at), k, exclude, ann_min_items=ann_min_items)


def _subset(catalogue: Catalogue, of: np.ndarray) -> Catalogue:
    """The catalogue of the videos ``of`` (indices), in that order."""
    pick = [None if a is None else np.asarray(a)[of] for a in (catalogue.birth, catalogue.birth_from_event)]
    return Catalogue(catalogue.rows[of], catalogue.layout, *pick)


def _positions(exclude: Sequence[np.ndarray], of: np.ndarray, n_items: int) -> list[np.ndarray]:
    """Each user's excluded videos among ``of``, as positions in it."""
    pos = np.full(n_items, -1, np.int64)
    pos[of] = np.arange(len(of))
    return [p[p >= 0] for p in (pos[np.asarray(e, np.int64)] for e in exclude)]


def rank_new_video_variants(
    queries: np.ndarray,
    catalogue: Catalogue,
    new_items: np.ndarray,
    layouts: Sequence[ScoreLayout],
    k: int,
    exclude: Sequence[np.ndarray],
    *,
    now: np.ndarray | None = None,
    memory_budget_bytes: int = 256 << 20,
) -> list[np.ndarray]:
    """For each of ``layouts`` (``catalogue.layout`` but for how videos without training events are
    scored: ``new_video_scale``, ``new_video_offset``, ``new_video_prior``), each query's top ``k``
    indices [n, k] (-1 padded): the lists ``rank(queries, Catalogue(rows with
    layout.new_video_rows applied to the ``new_items`` rows, ...), k, exclude, now=now)`` gives,
    from ``catalogue.rows`` as the tower made them, in one pass.

    The other videos' scores do not depend on those settings: their top ``k`` is taken once. A new
    video's score is linear in them (scale x its embedding part + its bias and freshness + offset x
    the query's bias column + prior x its content part), so each part is computed once per block
    of users and each layout only weighs them. Choosing new-video scoring over 63 layouts on
    MovieTweetings' per-user split (6,769 validation users, 10,506 videos) took 66 s as 63 rankings,
    7 s this way (``choose_new_video_scoring`` as a whole, content_only's floor included)."""
    base = catalogue.layout
    shared = ("dim", "bias", "content_dim", "freshness", "freshness_per_day")
    if any(getattr(layout, f) != getattr(base, f) for layout in layouts for f in shared):
        raise ValueError("layouts may differ from the catalogue's only in how new videos are scored")
    n_items, n = len(catalogue.rows), len(queries)
    new_idx, old_idx = np.flatnonzero(np.asarray(new_items, bool)), np.flatnonzero(~np.asarray(new_items, bool))
    k = min(k, n_items)

    if len(old_idx):
        old = _subset(catalogue, old_idx)
        top_old, top_old_scores = topk_with_exclusions(
            queries, old.rows, k, _positions(exclude, old_idx, n_items), add_scores=old.per_user(now)
        )
        top_old = np.where(top_old >= 0, old_idx[np.maximum(top_old, 0)], -1)
    else:
        top_old, top_old_scores = np.full((n, 0), -1, np.int64), np.zeros((n, 0), np.float32)
    out = [np.empty((n, k), np.int64) for _ in layouts]
    if not len(new_idx):
        for o in out:
            o[:] = top_old
        return out
    new = _subset(catalogue, new_idx)
    new_rows, new_excl, new_fresh = (
        new.rows.astype(np.float32),
        _positions(exclude, new_idx, n_items),
        new.per_user(now),
    )
    emb_t = np.ascontiguousarray(new_rows[:, : base.dim].T)
    content_t = np.ascontiguousarray(new_rows[:, base.content_cols].T) if base.content_dim else None
    block = max(1, min(n, memory_budget_bytes // (4 * 4 * len(new_idx))))
    for s in range(0, n, block):
        e = min(n, s + block)
        q = np.asarray(queries[s:e], np.float32)
        emb = q[:, : base.dim] @ emb_t
        content = q[:, base.content_cols] @ content_t if content_t is not None else None
        rest = np.zeros_like(emb)
        q_bias = None
        if base.bias_col is not None:
            q_bias = q[:, base.bias_col : base.bias_col + 1]
            rest += q_bias * new_rows[None, :, base.bias_col]
        if new_fresh is not None:
            rest += new_fresh(s, e)
        mask_excluded(rest, new_excl[s:e])
        ids = np.concatenate([top_old[s:e], np.broadcast_to(new_idx, (e - s, len(new_idx)))], axis=1)
        for layout, o in zip(layouts, out, strict=True):
            scores = np.float32(layout.new_video_scale) * emb + rest
            if content is not None:
                scores += np.float32(layout.new_video_prior) * content
            if q_bias is not None:
                scores += np.float32(layout.new_video_offset) * q_bias
            merged = np.concatenate([top_old_scores[s:e], scores], axis=1)
            top, _ = topk_from_scores(merged, k)
            o[s:e] = np.where(top >= 0, np.take_along_axis(ids, np.maximum(top, 0), axis=1), -1)
    return out


def rank_query_variants(
    queries: np.ndarray,
    catalogue: Catalogue,
    columns: slice,
    factors: Sequence[float],
    k: int,
    exclude: Sequence[np.ndarray],
    *,
    now: np.ndarray | None = None,
    memory_budget_bytes: int = 256 << 20,
) -> list[np.ndarray]:
    """For each of ``factors``, each query's top ``k`` indices [n, k] (-1 padded) with the queries'
    ``columns`` multiplied by it: the lists ``rank(scaled queries, catalogue, k, exclude, now=now)``
    gives, from one product of the queries and the rows and one of those columns alone per block of
    users (a query's score is linear in those columns' weight). The content prior's weight is chosen
    this way (``pipelines.fitting.choose_prior_weight``)."""
    rows, n = catalogue.rows, len(queries)
    n_items, k = len(rows), min(k, len(rows))
    rows_t = np.ascontiguousarray(rows.T, dtype=np.float32)
    part_t = np.ascontiguousarray(rows[:, columns].T, dtype=np.float32)
    fresh = catalogue.per_user(now)
    out = [np.empty((n, k), np.int64) for _ in factors]
    block = max(1, min(n, memory_budget_bytes // (3 * 4 * max(1, n_items))))
    for s in range(0, n, block):
        e = min(n, s + block)
        q = np.asarray(queries[s:e], np.float32)
        full = q @ rows_t
        if fresh is not None:
            full += fresh(s, e)
        mask_excluded(full, exclude[s:e])
        part = q[:, columns] @ part_t
        for factor, o in zip(factors, out, strict=True):
            o[s:e] = topk_from_scores(full + np.float32(factor - 1.0) * part, k)[0]
    return out
