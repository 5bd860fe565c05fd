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

from recsys.metrics import topk_with_exclusions
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
