"""How a trained model scores: the layout of exported query and item vectors, and freshness.

numpy only (the API imports it): one dot product of a query vector and an item row is the score;
an item's freshness bias depends on its age at a reference time and is either folded into the
item rows for one time (publish, the API) or added per user (offline evaluation, where each user
is judged at their own time).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

FRESHNESS_BUCKETS = 20
FRESHNESS_HOURS = 6.0
"""Item age buckets: bucket b holds ages with floor(log2(1 + age_hours / 6)) = b: under 6 hours,
6-18 h, 18-42 h, ~2-4 days, ... doubling; the last one (~350 years) open-ended."""


def age_buckets(age_hours: np.ndarray) -> np.ndarray:
    """[...] ages in hours (negative = not yet published, taken as 0) -> int32 bucket indices."""
    a = np.maximum(np.nan_to_num(np.asarray(age_hours, np.float64), nan=0.0), 0.0)
    return np.minimum(np.floor(np.log2(1.0 + a / FRESHNESS_HOURS)), FRESHNESS_BUCKETS - 1).astype(np.int32)


@dataclass(frozen=True)
class ScoreLayout:
    """How an exported query vector and item row combine into one dot-product score.

    columns [0, dim): the towers' L2-normalised embeddings (the user side divided by the
    temperature); column ``dim`` when ``bias``: the item's learned bias (plus its freshness
    bias once folded in for a reference time), 1 on the user side; the last ``content_dim``
    columns: the item's fixed content vector and ``content_weight`` x the mean content vector of
    the user's history. ``freshness``: the learned bias per age bucket (``age_buckets``), added
    to the bias column by ``fold_freshness`` for a given time, or None."""

    dim: int
    bias: bool = False
    content_dim: int = 0
    freshness: tuple[float, ...] | None = None
    freshness_per_day: float = 0.0
    """Added to the freshness bias per day of age (a learned slope, usually negative)."""
    new_video_scale: float = 1.0
    new_video_offset: float = 0.0
    new_video_prior: float = 1.0
    """How a video without training events (new to the model, or arriving after training) is
    scored: its embedding columns times ``new_video_scale``, its bias plus ``new_video_offset``
    and its content-prior columns times ``new_video_prior`` (``new_video_rows``). The tower's
    embedding of such a video comes from content alone and is less sure than a watched one's; the
    content prior and the learned bias then carry more of its score, and a larger prior weight
    lifts it for the users whose history it resembles rather than for everyone. Chosen on
    validation (``pipelines.fitting.choose_new_video_scoring``)."""

    def __post_init__(self) -> None:
        if not 0.0 < self.new_video_scale <= 1.0:
            raise ValueError(f"new_video_scale must be in (0, 1], got {self.new_video_scale}")
        if not self.new_video_prior >= 1.0:
            raise ValueError(f"new_video_prior must be >= 1, got {self.new_video_prior}")

    @property
    def total(self) -> int:
        return self.dim + int(self.bias) + self.content_dim

    @property
    def bias_col(self) -> int | None:
        return self.dim if self.bias else None

    @property
    def content_cols(self) -> slice:
        return slice(self.dim + int(self.bias), self.total)

    def to_json(self) -> dict[str, Any]:
        return {
            "dim": self.dim,
            "bias": self.bias,
            "content_dim": self.content_dim,
            "freshness": list(self.freshness) if self.freshness is not None else None,
            "freshness_per_day": self.freshness_per_day,
            "new_video_scale": self.new_video_scale,
            "new_video_offset": self.new_video_offset,
            "new_video_prior": self.new_video_prior,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ScoreLayout:
        fresh = d.get("freshness")
        return cls(
            int(d["dim"]),
            bool(d.get("bias")),
            int(d.get("content_dim", 0)),
            tuple(fresh) if fresh else None,
            float(d.get("freshness_per_day", 0.0)),
            float(d.get("new_video_scale", 1.0)),
            float(d.get("new_video_offset", 0.0)),
            float(d.get("new_video_prior", 1.0)),
        )

    def new_video_rows(self, rows: np.ndarray) -> np.ndarray:
        """Item rows of videos without training events (as the item tower gives them), as they are
        scored: a copy with ``new_video_scale``, ``new_video_offset`` and ``new_video_prior`` applied."""
        out = np.array(rows, np.float32, copy=True)
        out[:, : self.dim] *= np.float32(self.new_video_scale)
        if self.bias_col is not None:
            out[:, self.bias_col] += np.float32(self.new_video_offset)
        out[:, self.content_cols] *= np.float32(self.new_video_prior)
        return out

    def freshness_scores(
        self,
        now_s: np.ndarray,
        birth_s: np.ndarray,
        from_event: np.ndarray | None = None,
    ) -> np.ndarray | None:
        """[b, n_items] freshness bias of every item at each of ``b`` reference times (epoch s), or
        None without freshness.

        birth_s: each video's publication time, or (``from_event`` True) its first event's time;
        NaN: neither known. A video nobody has ever watched and without a publication time counts
        as new (the first bucket); one first watched after the reference time gets -inf: it was not
        in the catalogue yet. A video published after the reference time counts
        as new (age 0: it arrives during the period the list serves, through the fresh-video job)."""
        if self.freshness is None:
            return None
        table = np.asarray(self.freshness, np.float32)
        now = np.asarray(now_s, np.float64)[:, None]
        birth_raw = np.asarray(birth_s, np.float64)
        event_born = (
            np.isnan(birth_raw) if from_event is None else (np.asarray(from_event, bool) | np.isnan(birth_raw))
        )[None, :]
        birth = np.where(np.isnan(birth_raw), np.inf, birth_raw)[None, :]
        age_h = np.where(np.isfinite(birth), (now - birth) / 3600.0, -np.inf)
        clipped = np.maximum(age_h, 0.0)
        out = (table[age_buckets(clipped)] + np.float32(self.freshness_per_day / 24.0) * clipped).astype(np.float32)
        out[event_born & (age_h <= 0)] = table[0]
        # First watched after the reference time: not in the catalogue yet at that time (only a
        # user-by-user split can know of such a video; a nightly publish never does).
        out[event_born & np.isfinite(birth) & (age_h < 0)] = -np.inf
        return out

    def fold_freshness(
        self, item_matrix: np.ndarray, birth_s: np.ndarray, now_s: float, from_event: np.ndarray | None = None
    ) -> np.ndarray:
        """A copy of ``item_matrix`` whose bias column includes each item's freshness at ``now_s``:
        then one dot product per item scores everything, as publish and the API need."""
        out = np.array(item_matrix, np.float32, copy=True)
        fresh = self.freshness_scores(np.array([now_s], np.float64), birth_s, from_event=from_event)
        if fresh is not None and self.bias_col is not None:
            out[:, self.bias_col] += fresh[0]
        return out

    @classmethod
    def of_ensemble(cls, members: list[ScoreLayout]) -> ScoreLayout:
        """The layout of ``combine_members``' rows: the members' embedding columns side by side,
        one bias column and the content columns; the freshness bias is the members' mean. New
        videos as the tower gives them (the members' rows carry their own new-video scoring)."""
        first = members[0]
        if any((m.dim, m.bias, m.content_dim) != (first.dim, first.bias, first.content_dim) for m in members):
            raise ValueError("ensemble members must share one layout (dim, bias, content_dim)")
        fresh = [m.freshness for m in members]
        return replace(
            first,
            dim=first.dim * len(members),
            freshness=None if fresh[0] is None else tuple(np.mean(np.asarray(fresh, np.float64), axis=0).tolist()),
            freshness_per_day=float(np.mean([m.freshness_per_day for m in members])),
            new_video_scale=1.0,
            new_video_offset=0.0,
            new_video_prior=1.0,
        )

    def similarity_vectors(self, item_matrix: np.ndarray) -> np.ndarray:
        """The items' tower embeddings made unit length (a new video's are scaled by
        ``new_video_scale`` for scoring), for item-to-item similarity."""
        emb = np.asarray(item_matrix[:, : self.dim], np.float32)
        norms = np.linalg.norm(emb, axis=1, keepdims=True)
        return np.ascontiguousarray(np.divide(emb, norms, out=np.zeros_like(emb), where=norms > 1e-12))


def freshness_adder(
    layout: ScoreLayout,
    now: np.ndarray | None,
    birth: np.ndarray | None,
    from_event: np.ndarray | None = None,
) -> Any:
    """For ``topk_with_exclusions``: rows (start, stop) -> their [b, n_items] freshness scores
    at each user's own reference time ``now`` [n_users]; None when there is nothing to add."""
    if layout.freshness is None or now is None or birth is None:
        return None
    return lambda start, stop: layout.freshness_scores(now[start:stop], birth, from_event)


def combine_members(rows: list[np.ndarray], dim: int, query: bool) -> np.ndarray:
    """The rows of an ensemble from its members' rows (each [n, total] in one member's layout,
    embedding columns ``[0, dim)`` first): the members' embedding columns side by side (a query's
    divided by the number of members), the rest (bias column, content columns) averaged. The dot
    product of a combined query and a combined item row is then the mean of the members' scores:
    each member's embeddings meet only their own, and the rest is the same on the item side (the
    content vectors) or on the query side (the bias column's 1) for every member. Not for new
    videos' rows of members with different ``new_video_prior``: their content columns differ, and
    the product of the averages is then not the average of the products (``choose_ensemble`` judges
    members with new videos as the towers give them and scores new videos for the whole)."""
    k = len(rows)
    if k == 1:
        return np.asarray(rows[0], np.float32)
    emb = [np.asarray(r[:, :dim], np.float32) / (k if query else 1) for r in rows]
    rest = np.mean([np.asarray(r[:, dim:], np.float64) for r in rows], axis=0)
    return np.concatenate([*emb, rest], axis=1).astype(np.float32)
