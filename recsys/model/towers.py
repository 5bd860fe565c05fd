"""The item and user towers (Keras models) and what is read off a trained item tower.

Item tower: video-id embedding (with id dropout, so a cold video leans on content) + projected
visual, caption and comments embeddings (each centred and unit-length first,
``ItemContent.balanced``), each modality multiplied by its presence mask, fused (concat,
weighted_sum or attention; optionally moved along a learned vector by the comments' sentiment),
L2-normalised; plus a per-video bias from the fused features.

User tower: the user's last ``max_history`` watched videos, each encoded by the shared item
tower and pooled over the real (unpadded) positions (mean, or attention with a learned recency
vector per position), optionally weighted by each watch's completion, plus a user-id embedding,
L2-normalised; then the score layout's bias column and the content profile (``ScoreLayout``).

Imports TensorFlow (tf-keras, ``ensure_keras2``): import this module only where a model is built
or trained.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from recsys.model.config import MODALITIES, TwoTowerConfig, ensure_keras2
from recsys.model.data import ItemContent, content_prior_vectors
from recsys.scoring import ScoreLayout

ensure_keras2()
import tensorflow as tf  # noqa: E402  (after ensure_keras2: TFRS needs Keras 2)


class ConcatFusion(tf.keras.layers.Layer):
    """tokens [b, m, h], mask [b, m] -> [b, m * h + m]: every modality's token and the mask side
    by side (the next dense layer learns how to combine them)."""

    def __init__(self, hidden_dim: int) -> None:
        super().__init__(name="concat_fusion")
        self.hidden_dim = hidden_dim

    def call(self, tokens: Any, mask: Any) -> Any:
        return tf.concat([tf.reshape(tokens, [-1, len(MODALITIES) * self.hidden_dim]), mask], axis=-1)


class _WeighedFusion(tf.keras.layers.Layer):
    """tokens [b, m, h], mask [b, m] -> [b, h]: the tokens' weighted sum, the weights a softmax
    over the present modalities (``modality_weights``: a missing modality gets no weight, it is
    masked out, not averaged in as zeros)."""

    def logits(self, tokens: Any, mask: Any) -> Any:
        raise NotImplementedError

    def modality_weights(self, tokens: Any, mask: Any) -> Any:
        logits = self.logits(tokens, mask)
        e = tf.exp(logits - tf.reduce_max(logits, axis=1, keepdims=True)) * mask
        return e / tf.maximum(tf.reduce_sum(e, axis=1, keepdims=True), 1e-9)

    def call(self, tokens: Any, mask: Any) -> Any:
        return tf.reduce_sum(self.modality_weights(tokens, mask)[:, :, None] * tokens, axis=1)


class WeightedSumFusion(_WeighedFusion):
    """One learned weight per modality, the same for every video."""

    def __init__(self, hidden_dim: int) -> None:
        super().__init__(name="weighted_sum_fusion")
        self.modality_logits = self.add_weight(
            name="modality_logits", shape=(len(MODALITIES),), initializer="zeros", trainable=True
        )

    def logits(self, tokens: Any, mask: Any) -> Any:
        return tf.broadcast_to(self.modality_logits[None, :], tf.shape(mask))


class AttentionFusion(_WeighedFusion):
    """Weights by each token's match with a learned query: per video, from what it shows."""

    def __init__(self, hidden_dim: int) -> None:
        super().__init__(name="attention_fusion")
        self.hidden_dim = hidden_dim
        self.fusion_query = self.add_weight(
            name="fusion_query",
            shape=(hidden_dim,),
            initializer=tf.keras.initializers.RandomNormal(stddev=0.1),
            trainable=True,
        )

    def logits(self, tokens: Any, mask: Any) -> Any:
        return tf.einsum("bmh,h->bm", tokens, self.fusion_query) / np.sqrt(self.hidden_dim)


FUSION_LAYERS: dict[str, type] = {
    "concat": ConcatFusion,
    "weighted_sum": WeightedSumFusion,
    "attention": AttentionFusion,
}


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
            for name in ("visual", "visual_mask", "caption", "caption_mask", "comments", "comments_mask", "sentiment")
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
        self.fusion = FUSION_LAYERS[cfg.fusion](cfg.hidden_dim)
        self.fuse = tf.keras.layers.Dense(cfg.hidden_dim, activation="relu", name="fuse")
        self.out = tf.keras.layers.Dense(cfg.embedding_dim, name="item_out")
        if cfg.item_bias:
            self.bias_head = tf.keras.layers.Dense(1, name="item_bias", kernel_initializer="zeros")
        if cfg.sentiment_input:
            # the fused features move along this vector with the comments' sentiment (starts at 0)
            self.sentiment_vector = self.add_weight(
                name="sentiment_vector", shape=(cfg.hidden_dim,), initializer="zeros"
            )

    def tokens(self, item_idx: Any, training: bool = False, ids: bool = True) -> tuple[Any, Any]:
        """(tokens [b, 4, hidden_dim], masks [b, 4]) for modalities id, visual, caption, comments;
        ``ids=False``: every id masked, each item as a video no one has watched."""
        cfg = self.cfg
        item_idx = tf.cast(item_idx, tf.int32)
        id_mask = tf.gather(self.warm, item_idx) * float(ids)
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
        tokens = tf.stack([self.projections[m](inputs[m]) if m in self.active else zeros for m in MODALITIES], axis=1)
        return tokens * mask[:, :, None], mask

    def encode(self, item_idx: Any, training: bool = False, ids: bool = True) -> tuple[Any, Any]:
        """(embeddings [b, embedding_dim] L2-normalised, bias [b]; zeros without item_bias)."""
        tokens, mask = self.tokens(item_idx, training=training, ids=ids)
        h = self.fuse(self.fusion(tokens, mask))
        if self.cfg.sentiment_input:
            h += tf.gather(self.tables["sentiment"], tf.cast(item_idx, tf.int32))[:, None] * self.sentiment_vector
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
            # softplus(raw) / temperature weighs the content-only similarity, starting at
            # content_prior_init / temperature (1: the embeddings' own scale; at temperature 0.05 a
            # weight starting at 1 stayed ~20x smaller than the embeddings' and hardly counted)
            raw = float(np.log(np.expm1(cfg.content_prior_init)))  # softplus(raw) = content_prior_init
            self.content_weight_raw = self.add_weight(
                name="content_weight", shape=(), initializer=tf.keras.initializers.Constant(raw)
            )
            # a multiplier of the learned weight, chosen on validation once training is done
            # (``pipelines.fitting.choose_prior_weight``): the raw weight moves slowly under Adam
            self.content_weight_factor = self.add_weight(
                name="content_weight_factor", shape=(), initializer="ones", trainable=False
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
        return self.content_weight_factor * tf.math.softplus(self.content_weight_raw) / self.cfg.temperature

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
        prior[:n] = content_prior_vectors(content, cfg.content_prior_dim, cfg.modalities)
    known = np.append(np.arange(num_users), num_users).astype(np.int32)
    if user_counts is not None and cfg.user_id_min_events > 1:
        known[:num_users] = np.where(np.asarray(user_counts) >= cfg.user_id_min_events, known[:num_users], num_users)
    item_tower = ItemTower(cfg, padded, warm, id_drop, prior)
    return item_tower, UserTower(cfg, item_tower, num_users, known)


def fusion_weights(item_tower: Any, num_items: int, batch_size: int = 4096) -> dict[str, float] | None:
    """Mean weight of each modality over all items (present modalities only), or None for concat.

    weighted_sum: the learned softmax weights renormalised per item over its present modalities;
    attention: the attention each modality receives, averaged over items.
    """
    fusion = getattr(item_tower, "fusion", None)
    if not isinstance(fusion, _WeighedFusion):
        return None
    total = np.zeros(len(MODALITIES))
    for s in range(0, num_items, batch_size):
        idx = np.arange(s, min(s + batch_size, num_items), dtype=np.int32)
        tokens, mask = item_tower.tokens(idx, training=False)
        total += fusion.modality_weights(tokens, mask).numpy().sum(axis=0)
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
