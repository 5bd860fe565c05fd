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

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

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
    seed: int = 42

    def __post_init__(self) -> None:
        if self.fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}, got {self.fusion!r}")
        if self.user_pooling not in ("mean", "attention"):
            raise ValueError(f"user_pooling must be mean or attention, got {self.user_pooling!r}")
        object.__setattr__(self, "modalities", tuple(self.modalities))  # JSON round trips give lists
        if not self.modalities or set(self.modalities) - set(MODALITIES):
            raise ValueError(f"modalities must be a non-empty subset of {MODALITIES}, got {self.modalities}")
        for name in ("embedding_dim", "id_dim", "hidden_dim", "max_history", "epochs", "batch_size"):
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


def build_towers(
    cfg: TwoTowerConfig, content: ItemContent, num_users: int, warm_items: np.ndarray | None = None
) -> tuple[Any, Any]:
    """(item_tower, user_tower) as Keras models.

    warm_items: [num_items] bool, True for items with training events. A cold item's id
    embedding was never trained (it is still its random initialisation), so the tower always
    drops it and scores the item from content alone, as id dropout taught it to.

    item_tower(item_idx: [b] int32) -> [b, embedding_dim]
    user_tower({"history": [b, max_history] int32, "user": [b] int32, optional "weight": [b, max_history]
    float32 completion of each history watch}) -> [b, embedding_dim]
    Index ``content.num_items`` is the padding item; user index ``num_users`` the unknown user.
    """
    ensure_keras2()
    import tensorflow as tf

    padded = content.balanced().padded()
    pad_index = content.num_items

    class ItemTower(tf.keras.Model):
        def __init__(self) -> None:
            super().__init__(name="item_tower")
            self.tables = {
                name: tf.constant(getattr(padded, name))
                for name in ("visual", "visual_mask", "caption", "caption_mask", "comments", "comments_mask")
            }
            warm = np.ones(pad_index + 1, np.float32) if warm_items is None else np.append(warm_items, 0)
            self.warm = tf.constant(warm.astype(np.float32))
            self.id_embedding = tf.keras.layers.Embedding(pad_index + 1, cfg.id_dim, name="video_id")
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

        def tokens(self, item_idx: Any, training: bool = False) -> tuple[Any, Any]:
            """(tokens [b, 4, hidden_dim], masks [b, 4]) for modalities id, visual, caption, comments."""
            item_idx = tf.cast(item_idx, tf.int32)
            id_mask = tf.gather(self.warm, item_idx)
            if training and cfg.id_dropout > 0:
                # Drop whole id vectors, so the tower learns to score a video from content alone.
                id_mask = id_mask * tf.cast(tf.random.uniform(tf.shape(item_idx)) >= cfg.id_dropout, tf.float32)
            inputs = {"id": self.id_embedding(item_idx)}
            masks = {"id": id_mask}
            for m in MODALITIES[1:]:
                inputs[m] = tf.gather(self.tables[m], item_idx)
                masks[m] = tf.gather(self.tables[f"{m}_mask"], item_idx)
                if training and cfg.modality_dropout > 0:
                    keep = tf.random.uniform(tf.shape(item_idx)) >= cfg.modality_dropout
                    masks[m] = masks[m] * tf.cast(keep, tf.float32)
            mask = tf.stack([masks[m] * float(m in cfg.modalities) for m in MODALITIES], axis=1)
            tokens = tf.stack([self.projections[m](inputs[m]) for m in MODALITIES], axis=1) * mask[:, :, None]
            return tokens, mask

        def modality_weights(self, tokens: Any, mask: Any) -> Any:
            """[b, 4] weights over present modalities (softmax renormalised over the mask)."""
            if cfg.fusion == "weighted_sum":
                logits = tf.broadcast_to(self.modality_logits[None, :], tf.shape(mask))
            else:
                logits = tf.einsum("bmh,h->bm", tokens, self.fusion_query) / np.sqrt(cfg.hidden_dim)
            # A missing modality gets no weight: it is masked out, not averaged in as zeros.
            e = tf.exp(logits - tf.reduce_max(logits, axis=1, keepdims=True)) * mask
            return e / tf.maximum(tf.reduce_sum(e, axis=1, keepdims=True), 1e-9)

        def call(self, item_idx: Any, training: bool = False) -> Any:
            tokens, mask = self.tokens(item_idx, training=training)
            if cfg.fusion == "concat":
                x = tf.concat([tf.reshape(tokens, [-1, len(MODALITIES) * cfg.hidden_dim]), mask], axis=-1)
            else:
                x = tf.reduce_sum(self.modality_weights(tokens, mask)[:, :, None] * tokens, axis=1)
            return tf.math.l2_normalize(self.out(self.fuse(x)), axis=-1)

    class UserTower(tf.keras.Model):
        def __init__(self, item_tower: ItemTower) -> None:
            super().__init__(name="user_tower")
            self.item_tower = item_tower
            self.user_embedding = tf.keras.layers.Embedding(num_users + 1, cfg.id_dim, name="user_id")
            self.hidden = tf.keras.layers.Dense(cfg.hidden_dim, activation="relu", name="user_hidden")
            self.out = tf.keras.layers.Dense(cfg.embedding_dim, name="user_out")
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

        def history_weights(self, items: Any, mask: Any, completion: Any) -> Any:
            """[b, n] pooling weights over the real history positions (padding gets 0).

            With completion weighting, a watch counts in proportion to its completion (floored
            at 0.05 so a barely-started video still counts a little).
            """
            if cfg.completion_weighting:
                mask = mask * tf.maximum(completion, 0.05)
            if cfg.user_pooling == "mean":
                return mask / tf.maximum(tf.reduce_sum(mask, axis=1, keepdims=True), 1e-9)
            keys = items + self.position[None, :, :]
            logits = tf.einsum("bnd,d->bn", keys, self.pool_query) / np.sqrt(cfg.embedding_dim)
            e = tf.exp(logits - tf.reduce_max(logits, axis=1, keepdims=True)) * mask
            return e / tf.maximum(tf.reduce_sum(e, axis=1, keepdims=True), 1e-9)

        def call(self, inputs: dict[str, Any], training: bool = False) -> Any:
            history = tf.cast(inputs["history"], tf.int32)  # [b, n]
            b = tf.shape(history)[0]
            flat = self.item_tower(tf.reshape(history, [-1]), training=training)
            items = tf.reshape(flat, [b, cfg.max_history, cfg.embedding_dim])
            mask = tf.cast(history != pad_index, tf.float32)  # [b, n]
            count = tf.reduce_sum(mask, axis=1, keepdims=True)
            completion = tf.cast(inputs["weight"], tf.float32) if "weight" in inputs else mask
            pooled = tf.reduce_sum(self.history_weights(items, mask, completion)[:, :, None] * items, axis=1)
            parts = [pooled, tf.math.log1p(count)]
            if cfg.use_user_id:
                user = tf.cast(inputs["user"], tf.int32)
                if training and cfg.user_id_dropout > 0:
                    dropped = tf.random.uniform(tf.shape(user)) < cfg.user_id_dropout
                    user = tf.where(dropped, tf.fill(tf.shape(user), num_users), user)
                parts.append(self.user_embedding(user))
            x = self.hidden(tf.concat(parts, axis=-1))
            return tf.math.l2_normalize(self.out(x), axis=-1)

    item_tower = ItemTower()
    return item_tower, UserTower(item_tower)


@dataclass(frozen=True)
class TrainingExamples:
    """Parallel arrays: history [n, max_history] int32, user [n] int32, item [n] int32, and
    weight [n, max_history] float32 (completion of each history watch; None = all ones)."""

    history: np.ndarray
    user: np.ndarray
    item: np.ndarray
    weight: np.ndarray | None = None

    def history_weight(self) -> np.ndarray:
        # Ones where absent: the tower masks padding positions itself.
        return self.weight.astype(np.float32) if self.weight is not None else np.ones(self.history.shape, np.float32)


@dataclass(frozen=True)
class ValidationSet:
    """Held-out targets for early stopping: per user, their history and the items to find.

    history/weight: [n, max_history]; user: [n] int32; exclude: per user, items not to rank
    (their fitting events); relevant: per user, the held-out items (non-empty).
    """

    history: np.ndarray
    weight: np.ndarray
    user: np.ndarray
    exclude: list[np.ndarray]
    relevant: list[set[int]]

    def ndcg(self, user_tower: Any, item_vectors: np.ndarray, k: int = 10) -> float:
        from recsys.metrics import evaluate_rankings, topk_with_exclusions

        vecs = user_tower({"history": self.history, "user": self.user, "weight": self.weight}, training=False)
        ranked = topk_with_exclusions(np.asarray(vecs), item_vectors, k, self.exclude)[0]
        return evaluate_rankings(ranked, self.relevant, k)[f"ndcg@{k}"]


@dataclass
class TrainResult:
    item_tower: Any
    user_tower: Any
    history: dict[str, list[float]]


def train_two_tower(
    cfg: TwoTowerConfig,
    content: ItemContent,
    num_users: int,
    examples: TrainingExamples,
    validation: ValidationSet | None = None,
) -> TrainResult:
    """Fit the two towers on (history, user) -> item examples; returns the trained towers.

    With ``validation`` (and patience > 0), NDCG@10 on it is recorded each epoch as
    ``val_ndcg@10``; training stops early and the best epoch's weights are kept.
    """
    ensure_keras2()
    import tensorflow as tf
    import tensorflow_recommenders as tfrs

    if len(examples.item) < cfg.batch_size:
        raise ValueError(
            f"{len(examples.item)} training examples is fewer than one batch of {cfg.batch_size}; "
            "lower batch_size or provide more events"
        )
    tf.keras.utils.set_random_seed(cfg.seed)
    counts = np.bincount(examples.item, minlength=content.num_items).astype(np.float64)
    item_tower, user_tower = build_towers(cfg, content, num_users, warm_items=counts > 0)
    item_prob = tf.constant((counts / counts.sum()).astype(np.float32))

    class TwoTower(tfrs.Model):
        def __init__(self) -> None:
            super().__init__()
            self.user_tower = user_tower
            self.item_tower = item_tower
            self.task = tfrs.tasks.Retrieval(temperature=cfg.temperature, remove_accidental_hits=True)

        def compute_loss(self, features: dict[str, Any], training: bool = False) -> Any:
            query = self.user_tower(features, training=training)
            candidates = self.item_tower(features["item"], training=training)
            # logQ correction: in-batch negatives are drawn in proportion to item frequency, so
            # popular items are over-penalised; Retrieval subtracts log(p) from their logits.
            prob = tf.gather(item_prob, features["item"]) if cfg.logq_correction else None
            return self.task(
                query,
                candidates,
                candidate_sampling_probability=prob,
                candidate_ids=features["item"],
                compute_metrics=False,
            )

    model = TwoTower()
    model.compile(optimizer=tf.keras.optimizers.Adam(learning_rate=cfg.learning_rate))
    data = tf.data.Dataset.from_tensor_slices(
        {
            "history": examples.history,
            "user": examples.user,
            "item": examples.item,
            "weight": examples.history_weight(),
        }
    )
    data = (
        data.shuffle(len(examples.item), seed=cfg.seed, reshuffle_each_iteration=True)
        .batch(cfg.batch_size, drop_remainder=True)
        .prefetch(tf.data.AUTOTUNE)
    )
    callbacks = []
    if validation is not None and cfg.early_stopping_patience > 0 and len(validation.user):
        callbacks.append(_early_stop_callback(tf, validation, item_tower, user_tower, content.num_items, cfg))
    # One progress line per epoch on a terminal (the CLI); silent in Airflow logs and tests.
    fit = model.fit(data, epochs=cfg.epochs, verbose=2 if sys.stderr.isatty() else 0, callbacks=callbacks)
    history = {k: list(map(float, v)) for k, v in fit.history.items()}
    if callbacks:
        history.update(callbacks[0].summary())
    return TrainResult(item_tower=item_tower, user_tower=user_tower, history=history)


def _early_stop_callback(
    tf: Any, validation: ValidationSet, item_tower: Any, user_tower: Any, n_items: int, cfg: TwoTowerConfig
) -> Any:
    """A Keras callback: validation NDCG@10 after each epoch, stop on a plateau, restore the best."""

    class EarlyStop(tf.keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.scores: list[float] = []
            self.best_weights: list[Any] | None = None

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            score = validation.ndcg(user_tower, item_embeddings(item_tower, n_items))
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


def save_user_tower(user_tower: Any, path: Path, max_history: int) -> None:
    """Export the user tower as a SavedModel with one serving signature.

    signature ``serving_default``: history [b, max_history] int32, user [b] int32, weight
    [b, max_history] float32 (completion of each history watch) -> embedding [b, d].
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
        real position; padding is found by the tower itself) -> [b, d] float32."""
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
