"""The two-tower retrieval model (TensorFlow Recommenders) and its training examples.

Item tower: video-id embedding (with id dropout, so a cold video leans on content) + projected
visual embedding + projected caption embedding + projected comments embedding (each content
input centred and unit-length first, ``ItemContent.balanced``), each modality multiplied by its
presence mask, fused (concat, weighted_sum or attention), L2-normalised.

User tower: the user's last ``max_history`` watched videos, each encoded by the shared item
tower and pooled over the real (unpadded) positions (mean, or attention with a learned recency
vector per position), optionally weighted by each watch's completion, plus a user-id embedding,
L2-normalised.

Loss: ``tfrs.tasks.Retrieval`` in-batch softmax with temperature, logQ correction from item
frequency and accidental-hit removal by item id. With a validation set, NDCG@10 on it is measured
after every epoch; training stops when it has not improved for ``early_stopping_patience``
epochs and the weights of the best epoch are restored.

TensorFlow is imported inside functions; ``ensure_keras2()`` sets ``TF_USE_LEGACY_KERAS=1``
before the first import, since TFRS needs Keras 2 (tf-keras).
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from recsys.scoring import FRESHNESS_BUCKETS, FRESHNESS_HOURS, ScoreLayout, freshness_adder

log = logging.getLogger(__name__)

FUSIONS = ("concat", "weighted_sum", "attention")
MODALITIES = ("id", "visual", "caption", "comments")


def ensure_keras2() -> None:
    """Make ``import tensorflow`` give tf-keras (Keras 2); must run before TF's first import."""
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if os.environ["TF_USE_LEGACY_KERAS"] != "1":
        raise RuntimeError("TF_USE_LEGACY_KERAS must be 1: TensorFlow Recommenders refuses Keras 3")


@dataclass(frozen=True)
class TwoTowerConfig:
    embedding_dim: int = 64
    id_dim: int = 32
    hidden_dim: int = 128
    max_history: int = 20
    use_user_id: bool = True
    user_pooling: str = "mean"
    """How the user tower pools its history: mean, or attention (learned query, recency by position)."""
    fusion: str = "concat"
    modalities: tuple[str, ...] = ("id", "visual", "caption", "comments")
    """Which item-tower inputs are used (the rest are masked out): for ablations, e.g. ("id",)."""
    completion_weighting: bool = False
    """Weight each history item by its watch completion (0..1; 1 where unknown) when pooling."""
    epochs: int = 20
    """The most epochs; with a validation set, early stopping may end training sooner."""
    early_stopping_patience: int = 2
    """Stop after this many epochs without a better validation NDCG@10 (0: train all epochs)."""
    validation_fraction: float = 0.1
    """Each user's last share of training events (by time) held out for early stopping (0: none)."""
    refit_after_validation: bool = True
    """After early stopping, train again on all training events for the best epoch count."""
    batch_size: int = 256
    learning_rate: float = 0.003
    temperature: float = 0.1
    logq_correction: bool = True
    id_dropout: float = 0.1
    modality_dropout: float = 0.0
    """Share of training items whose each content modality (visual, caption, comments) is masked
    out, independently: the tower learns to score from any subset, so one strong modality cannot
    crowd out the others."""
    user_id_dropout: float = 0.1
    """Share of training examples whose user id is replaced by the unknown-user id, so that row is
    trained and a new user is scored from their history alone."""
    item_bias: bool = True
    """A learned per-video bias (from the item tower's fused features, so a new video gets one from
    its content): how watchable a video is whoever the user."""
    freshness: bool = True
    """A learned bias by the video's age at the time of each watch (log2-hour buckets); a video
    not yet published at an event's time is never its negative. Scored at a reference time."""
    content_prior: bool = True
    """Add the content-only similarity (user's mean content vector . video's content vector, the
    pretrained encoders' view, reduced to ``content_prior_dim`` by SVD) to every score, with a
    learned weight: a video with no training signal is still ranked by what it shows and says."""
    content_prior_dim: int = 64
    uniform_negatives: int = 256
    """Videos drawn uniformly from the whole catalogue as extra negatives per batch, besides the
    batch's positives (mixed negative sampling): unwatched and rare videos are seen as negatives."""
    id_dropout_frequency: float = 0.0
    """If > 0 (kappa), a video watched c times keeps its id with probability (1 - id_dropout) x
    c / (c + kappa): rare videos learn to be scored from content, like new ones."""
    user_id_min_events: int = 0
    """Users with fewer training events than this use the unknown-user row instead of their own id."""
    seed: int = 42

    def __post_init__(self) -> None:
        if self.fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}, got {self.fusion!r}")
        if self.user_pooling not in ("mean", "attention"):
            raise ValueError(f"user_pooling must be mean or attention, got {self.user_pooling!r}")
        object.__setattr__(self, "modalities", tuple(self.modalities))  # JSON round trips give lists
        if not self.modalities or set(self.modalities) - set(MODALITIES):
            raise ValueError(f"modalities must be a non-empty subset of {MODALITIES}, got {self.modalities}")
        for name in (
            "embedding_dim",
            "id_dim",
            "hidden_dim",
            "max_history",
            "epochs",
            "batch_size",
            "content_prior_dim",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if not 0.0 <= self.id_dropout < 1.0:
            raise ValueError(f"id_dropout must be in [0, 1), got {self.id_dropout}")
        if not 0.0 <= self.modality_dropout < 1.0:
            raise ValueError(f"modality_dropout must be in [0, 1), got {self.modality_dropout}")
        if not 0.0 <= self.user_id_dropout < 1.0:
            raise ValueError(f"user_id_dropout must be in [0, 1), got {self.user_id_dropout}")
        if self.early_stopping_patience < 0:
            raise ValueError(f"early_stopping_patience must be >= 0, got {self.early_stopping_patience}")
        if not 0.0 <= self.validation_fraction < 1.0:
            raise ValueError(f"validation_fraction must be in [0, 1), got {self.validation_fraction}")
        if self.uniform_negatives < 0 or self.id_dropout_frequency < 0 or self.user_id_min_events < 0:
            raise ValueError("uniform_negatives, id_dropout_frequency and user_id_min_events must be >= 0")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be positive, got {self.temperature}")


@dataclass(frozen=True)
class ItemContent:
    """Per-item content aligned to the item vocabulary (row i is item index i).

    visual: [n_items, d_visual]; caption: [n_items, d_text]; comments: [n_items, d_text];
    each *_mask: [n_items] float32, 1.0 where the modality is present.
    """

    visual: np.ndarray
    visual_mask: np.ndarray
    caption: np.ndarray
    caption_mask: np.ndarray
    comments: np.ndarray
    comments_mask: np.ndarray

    @property
    def num_items(self) -> int:
        return len(self.visual)

    def padded(self) -> ItemContent:
        """One extra all-zero, masked row at index ``num_items``: the history padding item."""

        def pad(a: np.ndarray) -> np.ndarray:
            return np.concatenate([a, np.zeros((1, *a.shape[1:]), a.dtype)]).astype(np.float32)

        return ItemContent(*(pad(getattr(self, f)) for f in self.__dataclass_fields__))

    def balanced(self) -> ItemContent:
        """Each content modality centred on its catalogue mean (over items that have it) and scaled
        to unit length per item; absent rows stay zero.

        Encoders differ in scale and offset: EfficientNet's pooled features (all positive, norm
        ~15 on the demo) would otherwise drown the unit-norm text embeddings in the fused input,
        and a shared offset makes every pair of videos look alike. Found on the demo source, where
        adding the visual input to id+text cut NDCG@10 from 0.28 to 0.18 before this."""

        def balance(a: np.ndarray, mask: np.ndarray) -> np.ndarray:
            present = mask > 0
            if not present.any():
                return a.astype(np.float32)
            out = (a - a[present].mean(axis=0)) * present[:, None]
            norms = np.linalg.norm(out, axis=1, keepdims=True)
            return np.divide(out, norms, out=np.zeros_like(out), where=norms > 1e-12).astype(np.float32)

        return ItemContent(
            balance(self.visual, self.visual_mask),
            self.visual_mask,
            balance(self.caption, self.caption_mask),
            self.caption_mask,
            balance(self.comments, self.comments_mask),
            self.comments_mask,
        )


def _weights_or_ones(weight: np.ndarray | None, n: int) -> np.ndarray:
    if weight is None:
        return np.ones(n, np.float32)
    w = np.asarray(weight, np.float64)
    return np.where(np.isfinite(w), np.clip(w, 0.0, 1.0), 1.0).astype(np.float32)


def history_windows(
    user_idx: np.ndarray,
    item_idx: np.ndarray,
    ts: np.ndarray,
    max_history: int,
    pad_index: int,
    weight: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """For each event, the items the same user watched strictly before it (most recent last).

    Inputs are parallel [n_events] arrays; ``weight`` is each event's completion (NaN or absent
    = 1). Returns (items [n_events, max_history] int32 left-padded with ``pad_index``, weights
    [n_events, max_history] float32, 0 at padding). The event's own item is never in its history
    (no target leakage); events with equal timestamps are ordered by their position in the input.
    """
    w = _weights_or_ones(weight, len(ts))
    order = np.lexsort((np.arange(len(ts)), ts, user_idx))
    out = np.full((len(ts), max_history), pad_index, dtype=np.int32)
    out_w = np.zeros((len(ts), max_history), dtype=np.float32)
    users_sorted = user_idx[order]
    items_sorted, w_sorted = item_idx[order], w[order]
    boundaries = np.flatnonzero(np.diff(users_sorted)) + 1
    for seg_start, seg_end in zip(
        np.concatenate([[0], boundaries]), np.concatenate([boundaries, [len(order)]]), strict=True
    ):
        seq, seq_w = items_sorted[seg_start:seg_end], w_sorted[seg_start:seg_end]
        for j in range(len(seq)):
            lo = max(0, j - max_history)
            if j > lo:
                out[order[seg_start + j], max_history - (j - lo) :] = seq[lo:j]
                out_w[order[seg_start + j], max_history - (j - lo) :] = seq_w[lo:j]
    return out, out_w


def last_history(
    user_idx: np.ndarray,
    item_idx: np.ndarray,
    ts: np.ndarray,
    num_users: int,
    max_history: int,
    pad_index: int,
    weight: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Each user's last ``max_history`` items ([num_users, max_history] int32, left-padded) and weights."""
    w = _weights_or_ones(weight, len(ts))
    order = np.lexsort((np.arange(len(ts)), ts, user_idx))
    out = np.full((num_users, max_history), pad_index, dtype=np.int32)
    out_w = np.zeros((num_users, max_history), dtype=np.float32)
    u_sorted, i_sorted, w_sorted = user_idx[order], item_idx[order], w[order]
    boundaries = np.flatnonzero(np.diff(u_sorted)) + 1
    starts = np.concatenate([[0], boundaries]).astype(int)
    ends = np.concatenate([boundaries, [len(order)]]).astype(int)
    for s, e in zip(starts, ends, strict=True):
        if e > s:
            lo = max(s, e - max_history)
            out[u_sorted[s], max_history - (e - lo) :] = i_sorted[lo:e]
            out_w[u_sorted[s], max_history - (e - lo) :] = w_sorted[lo:e]
    return out, out_w


def content_prior_vectors(content: ItemContent, dim: int) -> np.ndarray:
    """[n_items, dim] float32: the content-only baseline's item vectors (each present modality
    L2-normalised, concatenated) reduced to ``dim`` columns by a truncated SVD, so that dot
    products between them approximate the full content similarities. Deterministic."""
    parts = []
    for name in ("visual", "caption", "comments"):
        m = getattr(content, name).astype(np.float64)
        mask = getattr(content, f"{name}_mask")
        if not mask.any():
            continue
        n = np.linalg.norm(m, axis=1, keepdims=True)
        parts.append(np.where(n > 0, m / np.maximum(n, 1e-12), 0.0) * mask[:, None])
    out = np.zeros((content.num_items, dim), np.float32)
    if not parts:
        return out
    x = np.concatenate(parts, axis=1)
    if x.shape[1] <= dim:
        out[:, : x.shape[1]] = x
        return out
    # Randomised range finder (Halko et al.), two power iterations: exact enough for a prior.
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(x @ rng.normal(size=(x.shape[1], min(dim + 16, x.shape[1]))))
    for _ in range(2):
        q, _ = np.linalg.qr(x @ (x.T @ q))
    u, s, _ = np.linalg.svd(q.T @ x, full_matrices=False)
    rank = min(dim, len(s))  # a catalogue smaller than dim has fewer directions
    out[:, :rank] = ((q @ u[:, :rank]) * s[:rank]).astype(np.float32)
    return out


def _tf_towers() -> tuple[type, type]:
    """(ItemTower, UserTower) Keras classes, defined once TensorFlow is imported."""
    global _TOWERS
    if _TOWERS is not None:
        return _TOWERS
    ensure_keras2()
    import tensorflow as tf

    class ItemTower(tf.keras.Model):
        """item_idx [b] -> L2-normalised [b, embedding_dim]; ``bias(item_idx)`` -> [b]."""

        def __init__(
            self,
            cfg: TwoTowerConfig,
            padded: ItemContent,
            warm: np.ndarray,
            id_drop: np.ndarray,
            prior: np.ndarray,
        ) -> None:
            super().__init__(name="item_tower")
            self.cfg = cfg
            self.tables = {
                name: tf.constant(getattr(padded, name))
                for name in ("visual", "visual_mask", "caption", "caption_mask", "comments", "comments_mask")
            }
            self.warm = tf.constant(warm.astype(np.float32))
            self.active = {"id"} & set(cfg.modalities) | {
                m for m in MODALITIES[1:] if m in cfg.modalities and getattr(padded, f"{m}_mask").any()
            }
            self.id_drop = tf.constant(id_drop.astype(np.float32))
            self.prior = tf.constant(prior.astype(np.float32))
            self.id_embedding = tf.keras.layers.Embedding(len(warm), cfg.id_dim, name="video_id")
            # Every modality becomes a token of width hidden_dim, so they can be weighed and attended.
            self.projections = {
                m: tf.keras.layers.Dense(cfg.hidden_dim, activation="relu", name=f"{m}_proj") for m in MODALITIES
            }
            if cfg.fusion == "weighted_sum":
                self.modality_logits = self.add_weight(
                    name="modality_logits", shape=(len(MODALITIES),), initializer="zeros", trainable=True
                )
            if cfg.fusion == "attention":
                self.fusion_query = self.add_weight(
                    name="fusion_query",
                    shape=(cfg.hidden_dim,),
                    initializer=tf.keras.initializers.RandomNormal(stddev=0.1),
                    trainable=True,
                )
            self.fuse = tf.keras.layers.Dense(cfg.hidden_dim, activation="relu", name="fuse")
            self.out = tf.keras.layers.Dense(cfg.embedding_dim, name="item_out")
            if cfg.item_bias:
                self.bias_head = tf.keras.layers.Dense(1, name="item_bias", kernel_initializer="zeros")

        def tokens(self, item_idx: Any, training: bool = False) -> tuple[Any, Any]:
            """(tokens [b, 4, hidden_dim], masks [b, 4]) for modalities id, visual, caption, comments."""
            cfg = self.cfg
            item_idx = tf.cast(item_idx, tf.int32)
            id_mask = tf.gather(self.warm, item_idx)
            if training:
                # Drop whole id vectors (more often for rarely watched videos when frequency-tied),
                # so the tower learns to score a video from content alone, as it must a new one.
                drop = tf.gather(self.id_drop, item_idx)
                id_mask = id_mask * tf.cast(tf.random.uniform(tf.shape(item_idx)) >= drop, tf.float32)
            inputs = {"id": self.id_embedding(item_idx)}
            masks = {"id": id_mask}
            for m in MODALITIES[1:]:
                inputs[m] = tf.gather(self.tables[m], item_idx)
                masks[m] = tf.gather(self.tables[f"{m}_mask"], item_idx)
                if training and cfg.modality_dropout > 0:
                    keep = tf.random.uniform(tf.shape(item_idx)) >= cfg.modality_dropout
                    masks[m] = masks[m] * tf.cast(keep, tf.float32)
            mask = tf.stack([masks[m] * float(m in self.active) for m in MODALITIES], axis=1)
            # A modality unused or absent from the whole catalogue is a zero token (not projected).
            zeros = tf.zeros([tf.shape(item_idx)[0], cfg.hidden_dim])
            tokens = tf.stack(
                [self.projections[m](inputs[m]) if m in self.active else zeros for m in MODALITIES], axis=1
            )
            return tokens * mask[:, :, None], mask

        def modality_weights(self, tokens: Any, mask: Any) -> Any:
            """[b, 4] weights over present modalities (softmax renormalised over the mask)."""
            if self.cfg.fusion == "weighted_sum":
                logits = tf.broadcast_to(self.modality_logits[None, :], tf.shape(mask))
            else:
                logits = tf.einsum("bmh,h->bm", tokens, self.fusion_query) / np.sqrt(self.cfg.hidden_dim)
            # A missing modality gets no weight: it is masked out, not averaged in as zeros.
            e = tf.exp(logits - tf.reduce_max(logits, axis=1, keepdims=True)) * mask
            return e / tf.maximum(tf.reduce_sum(e, axis=1, keepdims=True), 1e-9)

        def encode(self, item_idx: Any, training: bool = False) -> tuple[Any, Any]:
            """(embeddings [b, embedding_dim] L2-normalised, bias [b]; zeros without item_bias)."""
            tokens, mask = self.tokens(item_idx, training=training)
            if self.cfg.fusion == "concat":
                x = tf.concat([tf.reshape(tokens, [-1, len(MODALITIES) * self.cfg.hidden_dim]), mask], axis=-1)
            else:
                x = tf.reduce_sum(self.modality_weights(tokens, mask)[:, :, None] * tokens, axis=1)
            h = self.fuse(x)
            emb = tf.math.l2_normalize(self.out(h), axis=-1)
            bias = self.bias_head(h)[:, 0] if self.cfg.item_bias else tf.zeros(tf.shape(emb)[:1])
            return emb, bias

        def call(self, item_idx: Any, training: bool = False) -> Any:
            return self.encode(item_idx, training=training)[0]

    class UserTower(tf.keras.Model):
        """{"history" [b, n] int32, "user" [b] int32, optional "weight" [b, n]} -> query [b, D]
        (``ScoreLayout``: the embedding / temperature, then 1 for the item bias, then the
        weighted content profile of the history)."""

        def __init__(self, cfg: TwoTowerConfig, item_tower: ItemTower, num_users: int, user_known: np.ndarray) -> None:
            super().__init__(name="user_tower")
            self.cfg = cfg
            self.item_tower = item_tower
            self.num_users = num_users
            self.pad_index = int(item_tower.warm.shape[0]) - 1
            self.user_known = tf.constant(user_known.astype(np.int32))
            self.user_embedding = tf.keras.layers.Embedding(num_users + 1, cfg.id_dim, name="user_id")
            self.hidden = tf.keras.layers.Dense(cfg.hidden_dim, activation="relu", name="user_hidden")
            self.out = tf.keras.layers.Dense(cfg.embedding_dim, name="user_out")
            if cfg.content_prior:
                # softplus(raw) weighs the content-only similarity; raw = 0.54 starts it at 1.0
                self.content_weight_raw = self.add_weight(
                    name="content_weight", shape=(), initializer=tf.keras.initializers.Constant(0.5413)
                )
            if cfg.user_pooling == "attention":
                # Recency: a learned vector per history position (the last position is the most recent).
                self.position = self.add_weight(
                    name="history_position",
                    shape=(cfg.max_history, cfg.embedding_dim),
                    initializer=tf.keras.initializers.RandomNormal(stddev=0.05),
                )
                self.pool_query = self.add_weight(
                    name="history_query",
                    shape=(cfg.embedding_dim,),
                    initializer=tf.keras.initializers.RandomNormal(stddev=0.1),
                )

        def content_weight(self) -> Any:
            return tf.math.softplus(self.content_weight_raw)

        def history_weights(self, items: Any, mask: Any, completion: Any) -> Any:
            """[b, n] pooling weights over the real history positions (padding gets 0).

            With completion weighting, a watch counts in proportion to its completion (floored
            at 0.05 so a barely-started video still counts a little).
            """
            cfg = self.cfg
            if cfg.completion_weighting:
                mask = mask * tf.maximum(completion, 0.05)
            if cfg.user_pooling == "mean":
                return mask / tf.maximum(tf.reduce_sum(mask, axis=1, keepdims=True), 1e-9)
            keys = items + self.position[None, :, :]
            logits = tf.einsum("bnd,d->bn", keys, self.pool_query) / np.sqrt(cfg.embedding_dim)
            e = tf.exp(logits - tf.reduce_max(logits, axis=1, keepdims=True)) * mask
            return e / tf.maximum(tf.reduce_sum(e, axis=1, keepdims=True), 1e-9)

        def embed(self, history: Any, user: Any, completion: Any, items: Any, training: bool = False) -> Any:
            """The query vector from history item embeddings already computed ([b, n, d])."""
            cfg = self.cfg
            mask = tf.cast(history != self.pad_index, tf.float32)  # [b, n]
            count = tf.reduce_sum(mask, axis=1, keepdims=True)
            if completion is None:
                completion = mask
            pooled = tf.reduce_sum(self.history_weights(items, mask, completion)[:, :, None] * items, axis=1)
            parts = [pooled, tf.math.log1p(count)]
            if cfg.use_user_id:
                # Users with too little history share the unknown-user row (index num_users).
                user = tf.gather(self.user_known, tf.cast(user, tf.int32))
                if training and cfg.user_id_dropout > 0:
                    dropped = tf.random.uniform(tf.shape(user)) < cfg.user_id_dropout
                    user = tf.where(dropped, tf.fill(tf.shape(user), self.num_users), user)
                parts.append(self.user_embedding(user))
            q = tf.math.l2_normalize(self.out(self.hidden(tf.concat(parts, axis=-1))), axis=-1)
            out = [q / cfg.temperature]
            if cfg.item_bias or cfg.freshness:
                out.append(tf.ones_like(q[:, :1]))
            if cfg.content_prior:
                prior = tf.gather(self.item_tower.prior, history)  # [b, n, k]; the padding row is 0
                profile = tf.reduce_sum(prior * mask[:, :, None], axis=1) / tf.maximum(count, 1.0)
                out.append(self.content_weight() * profile)
            return tf.concat(out, axis=-1) if len(out) > 1 else out[0]

        def call(self, inputs: dict[str, Any], training: bool = False) -> Any:
            history = tf.cast(inputs["history"], tf.int32)  # [b, n]
            b, n = tf.shape(history)[0], tf.shape(history)[1]
            flat = self.item_tower(tf.reshape(history, [-1]), training=training)
            items = tf.reshape(flat, [b, n, self.cfg.embedding_dim])
            completion = tf.cast(inputs["weight"], tf.float32) if "weight" in inputs else None
            return self.embed(history, inputs["user"], completion, items, training=training)

    _TOWERS = (ItemTower, UserTower)
    return _TOWERS


_TOWERS: tuple[type, type] | None = None


def layout_of(cfg: TwoTowerConfig, freshness: np.ndarray | None = None, per_day: float = 0.0) -> ScoreLayout:
    return ScoreLayout(
        dim=cfg.embedding_dim,
        bias=cfg.item_bias or cfg.freshness,
        content_dim=cfg.content_prior_dim if cfg.content_prior else 0,
        freshness=tuple(float(v) for v in freshness) if freshness is not None else None,
        freshness_per_day=per_day,
    )


def build_towers(
    cfg: TwoTowerConfig,
    content: ItemContent,
    num_users: int,
    warm_items: np.ndarray | None = None,
    item_counts: np.ndarray | None = None,
    user_counts: np.ndarray | None = None,
) -> tuple[Any, Any]:
    """(item_tower, user_tower) as Keras models.

    warm_items: [num_items] bool, True for items with training events. A cold item's id
    embedding was never trained (it is still its random initialisation), so the tower always
    drops it and scores the item from content alone, as id dropout taught it to.
    item_counts: [num_items] training events per item, for frequency-tied id dropout.
    user_counts: [num_users] training events per user; users below ``user_id_min_events`` use
    the unknown-user row.

    item_tower(item_idx: [b] int32) -> [b, embedding_dim]
    user_tower({"history": [b, max_history] int32, "user": [b] int32, optional "weight": [b, max_history]
    float32 completion of each history watch}) -> [b, layout.total] (see ``ScoreLayout``)
    Index ``content.num_items`` is the padding item; user index ``num_users`` the unknown user.
    """
    ItemTower, UserTower = _tf_towers()
    n = content.num_items
    padded = content.balanced().padded()
    if warm_items is None and item_counts is not None:
        warm_items = np.asarray(item_counts) > 0
    warm = np.ones(n + 1, np.float32) if warm_items is None else np.append(np.asarray(warm_items, np.float32), 0)
    id_drop = np.full(n + 1, cfg.id_dropout, np.float32)
    if cfg.id_dropout_frequency > 0 and item_counts is not None:
        # A video seen c times keeps its id with probability (1 - id_dropout) * c / (c + kappa):
        # rare videos learn to be scored like new ones, from their content.
        c = np.append(np.asarray(item_counts, np.float64), 0.0)
        keep = (1.0 - cfg.id_dropout) * c / (c + cfg.id_dropout_frequency)
        id_drop = (1.0 - keep).astype(np.float32)
    prior = np.zeros((n + 1, max(cfg.content_prior_dim, 1)), np.float32)
    if cfg.content_prior:
        prior[:n] = content_prior_vectors(content, cfg.content_prior_dim)
    known = np.append(np.arange(num_users), num_users).astype(np.int32)
    if user_counts is not None and cfg.user_id_min_events > 1:
        known[:num_users] = np.where(np.asarray(user_counts) >= cfg.user_id_min_events, known[:num_users], num_users)
    item_tower = ItemTower(cfg, padded, warm, id_drop, prior)
    return item_tower, UserTower(cfg, item_tower, num_users, known)


@dataclass(frozen=True)
class TrainingExamples:
    """Parallel arrays: history [n, max_history] int32, user [n] int32, item [n] int32,
    weight [n, max_history] float32 (completion of each history watch; None = all ones) and
    ts [n] (the event's epoch seconds; None = no time, freshness then learns nothing)."""

    history: np.ndarray
    user: np.ndarray
    item: np.ndarray
    weight: np.ndarray | None = None
    ts: np.ndarray | None = None

    def history_weight(self) -> np.ndarray:
        # Ones where absent: the tower masks padding positions itself.
        return self.weight.astype(np.float32) if self.weight is not None else np.ones(self.history.shape, np.float32)


@dataclass(frozen=True)
class ValidationSet:
    """Held-out targets for early stopping: per user, their history and the items to find.

    history/weight: [n, max_history]; user: [n] int32; exclude: per user, items not to rank
    (their fitting events); relevant: per user, the held-out items (non-empty); now: [n] each
    user's reference time (epoch s) for freshness, or None.
    """

    history: np.ndarray
    weight: np.ndarray
    user: np.ndarray
    exclude: list[np.ndarray]
    relevant: list[set[int]]
    now: np.ndarray | None = None

    def ndcg(self, model: TrainedModel, k: int = 10) -> float:
        from recsys.metrics import evaluate_rankings

        ranked = model.rank(self.history, self.user, self.weight, self.exclude, k, self.now)
        return evaluate_rankings(ranked, self.relevant, k)[f"ndcg@{k}"]

    def per_user_ndcg(self, model: TrainedModel, k: int = 10) -> np.ndarray:
        """[n] each validation user's NDCG@k (what ``ndcg`` averages), for paired comparisons."""
        from recsys.metrics import per_user_ndcg

        ranked = model.rank(self.history, self.user, self.weight, self.exclude, k, self.now)
        return per_user_ndcg(ranked, self.relevant, k)


@dataclass
class TrainedModel:
    """Trained towers and what scoring needs besides them (the layout and each item's birth time)."""

    item_tower: Any
    user_tower: Any
    layout: ScoreLayout
    item_birth: np.ndarray
    """[n_items] epoch s an item became watchable (publication, else first training event); NaN unknown."""
    num_items: int
    new_items: np.ndarray | None = None
    """[n_items] bool: videos without a training event (scored from content alone)."""
    birth_from_event: np.ndarray | None = None
    """[n_items] bool: the birth is the first event (no publication time), see ``recsys.scoring``."""

    def item_matrix(self) -> np.ndarray:
        return item_matrix(self.item_tower, self.num_items, self.layout)

    def user_vectors(self, history: np.ndarray, user: np.ndarray, weight: np.ndarray | None = None) -> np.ndarray:
        w = np.ones(history.shape, np.float32) if weight is None else weight
        out = [
            self.user_tower(
                {"history": history[s : s + 4096], "user": user[s : s + 4096], "weight": w[s : s + 4096]},
                training=False,
            ).numpy()
            for s in range(0, len(user), 4096)
        ]
        return np.concatenate(out).astype(np.float32) if out else np.zeros((0, self.layout.total), np.float32)

    def rank(
        self,
        history: np.ndarray,
        user: np.ndarray,
        weight: np.ndarray | None,
        exclude: list[np.ndarray],
        k: int,
        now: np.ndarray | None = None,
    ) -> np.ndarray:
        from recsys.metrics import topk_with_exclusions

        vecs = self.user_vectors(history, user, weight)
        add = freshness_adder(self.layout, now, self.item_birth, self.birth_from_event)
        return topk_with_exclusions(vecs, self.item_matrix(), k, exclude, add_scores=add)[0]


@dataclass
class TrainResult(TrainedModel):
    history: dict[str, list[float]] = None  # type: ignore[assignment]


def train_two_tower(
    cfg: TwoTowerConfig,
    content: ItemContent,
    num_users: int,
    examples: TrainingExamples,
    validation: ValidationSet | None = None,
    item_birth: np.ndarray | None = None,
    user_counts: np.ndarray | None = None,
    birth_from_event: np.ndarray | None = None,
) -> TrainResult:
    """Fit the two towers on (history, user) -> item examples; returns the trained towers.

    Loss: softmax over the batch's positives and ``uniform_negatives`` videos drawn uniformly from
    the catalogue (mixed negative sampling), each candidate's logit = query . item + item bias +
    freshness bias of the item's age at the event's time + content-prior similarity, minus
    log(expected count of the candidate among the negatives) with ``logq_correction``; a
    candidate that is the row's own item (accidental hit) or not yet published at the event's
    time is masked out.

    item_birth: [n_items] epoch s each video became watchable (NaN: unknown; such a video is
    treated as new when scored, and never as a negative in training). birth_from_event: [n_items]
    bool, True where the birth is the video's first event (no earlier publication time): that
    event's own freshness goes to a bucket of its own, since every such video is watched at age 0
    by construction and a new video is not. With ``validation`` (and
    patience > 0), NDCG@10 on it is recorded each epoch as ``val_ndcg@10``; training stops early
    and the best epoch's weights are kept.
    """
    ensure_keras2()
    import tensorflow as tf
    import tensorflow_recommenders as tfrs

    if len(examples.item) < 2:
        raise ValueError(f"{len(examples.item)} training example(s): the softmax needs at least 2 per batch")
    if len(examples.item) < cfg.batch_size:  # a small source (a new service): one batch of all it has
        log.warning("%d training examples < batch_size %d: batches of %d", len(examples.item), cfg.batch_size,
                    len(examples.item))  # fmt: skip
        cfg = replace(cfg, batch_size=len(examples.item))
    tf.keras.utils.set_random_seed(cfg.seed)
    n_items = content.num_items
    counts = np.bincount(examples.item, minlength=n_items).astype(np.float64)
    if user_counts is None:
        user_counts = np.bincount(examples.user, minlength=num_users)
    item_tower, user_tower = build_towers(
        cfg, content, num_users, warm_items=counts > 0, item_counts=counts, user_counts=user_counts
    )
    birth = np.full(n_items, np.nan) if item_birth is None else np.asarray(item_birth, np.float64)
    use_time = cfg.freshness and examples.ts is not None
    t0 = float(np.min(examples.ts)) if examples.ts is not None and len(examples.ts) else 0.0
    # Hours since t0; a video with unknown birth is "not yet" at every training time.
    birth_h = tf.constant(np.where(np.isnan(birth), np.inf, (birth - t0) / 3600.0).astype(np.float32))
    from_event = np.zeros(n_items, bool) if birth_from_event is None else np.asarray(birth_from_event, bool)
    from_event = from_event | np.isnan(birth)  # no publication time and never watched: born at a first event
    from_event_t = tf.constant(from_event)
    b_size, n_neg = cfg.batch_size, cfg.uniform_negatives
    # Expected count of each video among one batch's candidates: b_size draws by frequency (the
    # batch's positives) plus n_neg uniform draws.
    expected = b_size * counts / max(counts.sum(), 1.0) + n_neg / n_items
    log_expected = tf.constant(np.log(np.maximum(expected, 1e-12)).astype(np.float32))

    class TwoTower(tfrs.Model):
        def __init__(self) -> None:
            super().__init__()
            self.user_tower = user_tower
            self.item_tower = item_tower
            if use_time:
                # one extra row: the event that defined its video's birth; it is never used to
                # score (every video born at its first event is watched at age 0 by construction,
                # a new video is not)
                self.freshness = tf.keras.layers.Embedding(
                    FRESHNESS_BUCKETS + 1, 1, embeddings_initializer="zeros", name="freshness"
                )
                self.freshness_per_day = self.add_weight(name="freshness_per_day", shape=(), initializer="zeros")

        def compute_loss(self, features: dict[str, Any], training: bool = False) -> Any:
            history = tf.cast(features["history"], tf.int32)
            pos = tf.cast(features["item"], tf.int32)
            b = tf.shape(pos)[0]
            cands = pos
            if n_neg > 0:
                cands = tf.concat([pos, tf.random.uniform([n_neg], 0, n_items, dtype=tf.int32)], axis=0)
            # Each distinct video in the batch goes through the item tower once.
            needed = tf.concat([tf.reshape(history, [-1]), cands], axis=0)
            uniq, where = tf.unique(needed)
            emb_u, bias_u = self.item_tower.encode(uniq, training=training)
            n_hist = tf.size(history)
            hist_emb = tf.reshape(tf.gather(emb_u, where[:n_hist]), [b, cfg.max_history, cfg.embedding_dim])
            cand_emb = tf.gather(emb_u, where[n_hist:])
            query = self.user_tower.embed(history, features["user"], features.get("weight"), hist_emb, training)
            cand_prior = tf.gather(self.item_tower.prior, cands) if cfg.content_prior else None
            logits = tf.matmul(query[:, : cfg.embedding_dim], cand_emb, transpose_b=True)
            if cfg.item_bias:
                logits += tf.gather(bias_u, where[n_hist:])[None, :]
            if cand_prior is not None:
                logits += tf.matmul(query[:, cfg.embedding_dim + int(layout.bias) :], cand_prior, transpose_b=True)
            invalid = tf.logical_and(
                tf.equal(pos[:, None], cands[None, :]),
                tf.logical_not(tf.equal(tf.range(b)[:, None], tf.range(tf.size(cands))[None, :])),
            )
            if use_time:
                age = features["t"][:, None] - tf.gather(birth_h, cands)[None, :]  # hours; -inf: never seen
                # not yet published or watched at the watch's time: could not have been watched
                invalid = tf.logical_or(invalid, age < 0)
                grown = tf.maximum(age, 0.0)
                bucket = tf.cast(
                    tf.minimum(
                        tf.floor(tf.math.log(1.0 + grown / FRESHNESS_HOURS) / np.log(2.0)), FRESHNESS_BUCKETS - 1
                    ),
                    tf.int32,
                )
                # the watch that defined its video's birth (its first event) goes to a row of its own
                birth_event = tf.logical_and(tf.equal(age, 0.0), tf.gather(from_event_t, cands)[None, :])
                bucket = tf.where(birth_event, FRESHNESS_BUCKETS, bucket)
                logits += self.freshness(bucket)[:, :, 0]
                logits += self.freshness_per_day * grown / 24.0
            if cfg.logq_correction:
                logits -= tf.gather(log_expected, cands)[None, :]
            logits = tf.where(invalid, tf.fill(tf.shape(logits), -1e9), logits)
            return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.range(b), logits=logits))

    layout = layout_of(cfg, np.zeros(FRESHNESS_BUCKETS) if use_time else None)
    model = TwoTower()
    model.compile(optimizer=tf.keras.optimizers.Adam(learning_rate=cfg.learning_rate))
    ts_h = (
        ((examples.ts.astype(np.float64) - t0) / 3600.0).astype(np.float32)
        if examples.ts is not None
        else np.zeros(len(examples.item), np.float32)
    )
    data = tf.data.Dataset.from_tensor_slices(
        {
            "history": examples.history,
            "user": examples.user,
            "item": examples.item,
            "weight": examples.history_weight(),
            "t": ts_h,
        }
    )
    data = (
        data.shuffle(len(examples.item), seed=cfg.seed, reshuffle_each_iteration=True)
        .batch(cfg.batch_size, drop_remainder=True)
        .prefetch(tf.data.AUTOTUNE)
    )

    def trained() -> TrainResult:
        table = model.freshness.embeddings.numpy()[:FRESHNESS_BUCKETS, 0] if use_time else None
        per_day = float(model.freshness_per_day.numpy()) if use_time else 0.0
        layout = layout_of(cfg, table, per_day)
        result = TrainResult(item_tower, user_tower, layout, birth, n_items, counts == 0, history={})
        result.birth_from_event = from_event
        return result

    callbacks = []
    if validation is not None and cfg.early_stopping_patience > 0 and len(validation.user):
        callbacks.append(_early_stop_callback(tf, validation, trained, cfg))
    # One progress line per epoch on a terminal (the CLI); silent in Airflow logs and tests.
    fit = model.fit(data, epochs=cfg.epochs, verbose=2 if sys.stderr.isatty() else 0, callbacks=callbacks)
    history = {k: list(map(float, v)) for k, v in fit.history.items()}
    if callbacks:
        history.update(callbacks[0].summary())
    result = trained()
    result.history = history
    return result


def _early_stop_callback(tf: Any, validation: ValidationSet, trained: Any, cfg: TwoTowerConfig) -> Any:
    """A Keras callback: validation NDCG@10 after each epoch, stop on a plateau, restore the best."""

    class EarlyStop(tf.keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.scores: list[float] = []
            self.best_weights: list[Any] | None = None

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            score = validation.ndcg(trained())
            if not self.scores or score > max(self.scores):
                self.best_weights = self.model.get_weights()
            self.scores.append(score)
            if len(self.scores) - 1 - int(np.argmax(self.scores)) >= cfg.early_stopping_patience:
                self.model.stop_training = True

        def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
            if self.best_weights is not None:
                self.model.set_weights(self.best_weights)

        def summary(self) -> dict[str, Any]:
            return {
                "val_ndcg@10": self.scores,
                "best_epoch": [int(np.argmax(self.scores)) + 1],
                "validation_users": [len(validation.user)],
            }

    return EarlyStop()


def fusion_weights(item_tower: Any, num_items: int, batch_size: int = 4096) -> dict[str, float] | None:
    """Mean weight of each modality over all items (present modalities only), or None for concat.

    weighted_sum: the learned softmax weights renormalised per item over its present modalities;
    attention: the attention each modality receives, averaged over items.
    """
    if not hasattr(item_tower, "modality_weights") or not (
        hasattr(item_tower, "modality_logits") or hasattr(item_tower, "fusion_query")
    ):
        return None
    total = np.zeros(len(MODALITIES))
    for s in range(0, num_items, batch_size):
        idx = np.arange(s, min(s + batch_size, num_items), dtype=np.int32)
        tokens, mask = item_tower.tokens(idx, training=False)
        total += item_tower.modality_weights(tokens, mask).numpy().sum(axis=0)
    return {m: float(w) for m, w in zip(MODALITIES, total / max(num_items, 1), strict=True)}


def item_embeddings(item_tower: Any, num_items: int, batch_size: int = 4096) -> np.ndarray:
    """[num_items, embedding_dim] float32 item vectors (inference mode: no id dropout)."""
    out = [
        item_tower(np.arange(s, min(s + batch_size, num_items), dtype=np.int32), training=False).numpy()
        for s in range(0, num_items, batch_size)
    ]
    return np.concatenate(out).astype(np.float32)


def item_matrix(item_tower: Any, num_items: int, layout: ScoreLayout, batch_size: int = 4096) -> np.ndarray:
    """[num_items, layout.total] float32: each item's side of the score (``ScoreLayout``), the
    bias column without freshness (``ScoreLayout.fold_freshness`` adds it for a given time)."""
    out = []
    for s in range(0, num_items, batch_size):
        idx = np.arange(s, min(s + batch_size, num_items), dtype=np.int32)
        emb, bias = item_tower.encode(idx, training=False)
        parts = [emb.numpy()]
        if layout.bias:
            parts.append(bias.numpy()[:, None])
        if layout.content_dim:
            parts.append(item_tower.prior.numpy()[idx, : layout.content_dim])
        out.append(np.concatenate(parts, axis=1))
    return np.concatenate(out).astype(np.float32)


def save_user_tower(user_tower: Any, path: Path, max_history: int) -> None:
    """Export the user tower as a SavedModel with one serving signature.

    signature ``serving_default``: history [b, max_history] int32, user [b] int32, weight
    [b, max_history] float32 (completion of each history watch) -> embedding [b, D] (the query
    side of ``ScoreLayout``).
    """
    ensure_keras2()
    import tensorflow as tf

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, max_history], tf.int32, name="history"),
            tf.TensorSpec([None], tf.int32, name="user"),
            tf.TensorSpec([None, max_history], tf.float32, name="weight"),
        ]
    )
    def serve(history: Any, user: Any, weight: Any) -> dict[str, Any]:
        return {"embedding": user_tower({"history": history, "user": user, "weight": weight}, training=False)}

    module = tf.Module()
    module.user_tower = user_tower
    module.serve = serve
    tf.saved_model.save(module, str(path), signatures={"serving_default": serve})


class LoadedUserTower:
    """The exported user tower, reloaded in a new process."""

    def __init__(self, path: Path) -> None:
        ensure_keras2()
        import tensorflow as tf

        self._fn = tf.saved_model.load(str(path)).signatures["serving_default"]
        self._tf = tf

    def __call__(
        self, history: np.ndarray, user: np.ndarray, weight: np.ndarray | None = None, batch_size: int = 4096
    ) -> np.ndarray:
        """history [b, max_history] int32, user [b] int32, weight [b, max_history] (None: 1 per
        real position; padding is found by the tower itself) -> [b, D] float32."""
        if weight is None:
            weight = np.ones(history.shape, np.float32)
        out = []
        for s in range(0, len(user), batch_size):
            res = self._fn(
                history=self._tf.constant(history[s : s + batch_size], self._tf.int32),
                user=self._tf.constant(user[s : s + batch_size], self._tf.int32),
                weight=self._tf.constant(weight[s : s + batch_size], self._tf.float32),
            )
            out.append(res["embedding"].numpy())
        return np.concatenate(out).astype(np.float32) if out else np.zeros((0, 0), np.float32)
