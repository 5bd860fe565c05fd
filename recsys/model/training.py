"""Training the two towers with TensorFlow Recommenders, and the trained model as ranking code
sees it (``TrainedModel``).

Loss: in-batch softmax over the batch's positives plus ``uniform_negatives`` uniformly drawn
videos (mixed negative sampling), with temperature, logQ correction by each candidate's expected
count, accidental-hit and not-yet-published masking, a learned freshness bias by the video's age
at each watch, the item bias and the content-prior similarity. With a validation set, NDCG@10
on it is measured after every epoch; training stops when it has not improved for
``early_stopping_patience`` epochs and the best epoch's weights are restored.

Imports TensorFlow and TFRS (``ensure_keras2`` first).
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from recsys.model.config import TwoTowerConfig, ensure_keras2
from recsys.model.data import ItemContent, TrainingExamples, ValidationSet, layout_of
from recsys.model.towers import build_towers, item_matrix
from recsys.retrieval import Catalogue, rank
from recsys.scoring import FRESHNESS_BUCKETS, FRESHNESS_HOURS, ScoreLayout

ensure_keras2()
import tensorflow as tf  # noqa: E402  (after ensure_keras2: TFRS needs Keras 2)
import tensorflow_recommenders as tfrs  # noqa: E402

log = logging.getLogger(__name__)
_STRATEGY: Any = None


def distribution() -> Any:
    """The process's ``tf.distribute`` strategy: ``MultiWorkerMirroredStrategy`` when ``TF_CONFIG``
    names a cluster of workers (``pipelines.distributed`` starts them), else the default one.
    Created once, before the first model (TensorFlow requires it before other collective ops)."""
    global _STRATEGY
    if _STRATEGY is None:
        _STRATEGY = (
            tf.distribute.MultiWorkerMirroredStrategy() if os.environ.get("TF_CONFIG") else tf.distribute.get_strategy()
        )
    return _STRATEGY


def is_chief() -> bool:
    """True unless this process is a non-chief worker of a multi-worker cluster (worker index > 0)."""
    import json

    task = json.loads(os.environ.get("TF_CONFIG") or "{}").get("task", {})
    return task.get("type", "worker") in ("chief", "worker") and int(task.get("index", 0)) == 0


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
        """[num_items, layout.total] the rows items are scored by (``ScoreLayout``; videos without
        training events as ``ScoreLayout.new_video_rows`` makes them)."""
        rows = item_matrix(self.item_tower, self.num_items, self.layout)
        if self.new_items is not None and self.new_items.any():
            rows[self.new_items] = self.layout.new_video_rows(rows[self.new_items])
        return rows

    def item_matrix_as_trained(self) -> np.ndarray:
        """The item rows with every video scored as the tower gives it (no new-video scoring)."""
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
        catalogue = Catalogue(self.item_matrix(), self.layout, self.item_birth, self.birth_from_event)
        return rank(self.user_vectors(history, user, weight), catalogue, k, exclude, now=now)[0]


@dataclass
class TrainResult(TrainedModel):
    history: dict[str, list[float]] = None  # type: ignore[assignment]


class TwoTowerModel(tfrs.Model):
    """The towers, the learned freshness bias and the loss (``compute_loss``) for one training run.

    ``birth_h`` [n_items]: each video's birth in hours since the first training event (inf:
    unknown); ``from_event`` [n_items]: the birth is the video's first event; ``log_expected``
    [n_items]: log of each video's expected count among one batch's candidates (logQ correction).
    """

    def __init__(
        self,
        cfg: TwoTowerConfig,
        item_tower: Any,
        user_tower: Any,
        use_time: bool,
        birth_h: np.ndarray,
        from_event: np.ndarray,
        log_expected: np.ndarray,
    ) -> None:
        super().__init__()
        self.cfg = cfg
        self.user_tower = user_tower
        self.item_tower = item_tower
        self.use_time = use_time
        self.n_items = len(birth_h)
        self.birth_h = tf.constant(birth_h.astype(np.float32))
        self.from_event = tf.constant(from_event)
        self.log_expected = tf.constant(log_expected.astype(np.float32))
        self.layout = layout_of(cfg, np.zeros(FRESHNESS_BUCKETS) if use_time else None)
        if use_time:
            # one extra row: the event that defined its video's birth; it is never used to
            # score (every video born at its first event is watched at age 0 by construction,
            # a new video is not)
            self.freshness = tf.keras.layers.Embedding(
                FRESHNESS_BUCKETS + 1, 1, embeddings_initializer="zeros", name="freshness"
            )
            self.freshness_per_day = self.add_weight(name="freshness_per_day", shape=(), initializer="zeros")

    def candidates(self, pos: Any) -> Any:
        """The batch's positives, then ``uniform_negatives`` videos drawn uniformly."""
        if self.cfg.uniform_negatives <= 0:
            return pos
        drawn = tf.random.uniform([self.cfg.uniform_negatives], 0, self.n_items, dtype=tf.int32)
        return tf.concat([pos, drawn], axis=0)

    def freshness_logits(self, t: Any, cands: Any) -> tuple[Any, Any, Any]:
        """[b, c] each candidate's freshness at each watch's time: (bias of its age bucket, the
        per-day slope's term, not yet born)."""
        age = t[:, None] - tf.gather(self.birth_h, cands)[None, :]  # hours; -inf: never seen
        grown = tf.maximum(age, 0.0)
        bucket = tf.cast(
            tf.minimum(tf.floor(tf.math.log(1.0 + grown / FRESHNESS_HOURS) / np.log(2.0)), FRESHNESS_BUCKETS - 1),
            tf.int32,
        )
        # the watch that defined its video's birth (its first event) goes to a row of its own
        birth_event = tf.logical_and(tf.equal(age, 0.0), tf.gather(self.from_event, cands)[None, :])
        bucket = tf.where(birth_event, FRESHNESS_BUCKETS, bucket)
        return self.freshness(bucket)[:, :, 0], self.freshness_per_day * grown / 24.0, age < 0

    def compute_loss(self, features: dict[str, Any], training: bool = False) -> Any:
        cfg = self.cfg
        history = tf.cast(features["history"], tf.int32)
        pos = tf.cast(features["item"], tf.int32)
        b = tf.shape(pos)[0]
        cands = self.candidates(pos)
        # Each distinct video in the batch goes through the item tower once.
        uniq, where = tf.unique(tf.concat([tf.reshape(history, [-1]), cands], axis=0))
        emb_u, bias_u = self.item_tower.encode(uniq, training=training)
        n_hist = tf.size(history)
        hist_emb = tf.reshape(tf.gather(emb_u, where[:n_hist]), [b, cfg.max_history, cfg.embedding_dim])
        query = self.user_tower.embed(history, features["user"], features.get("weight"), hist_emb, training)
        # the row's own video elsewhere among the candidates (an accidental hit) is no negative
        invalid = tf.logical_and(
            tf.equal(pos[:, None], cands[None, :]),
            tf.logical_not(tf.equal(tf.range(b)[:, None], tf.range(tf.size(cands))[None, :])),
        )
        shared = tf.zeros([b, tf.size(cands)])  # the terms both softmaxes share
        if cfg.content_prior:
            prior = tf.gather(self.item_tower.prior, cands)
            shared += tf.matmul(query[:, cfg.embedding_dim + int(self.layout.bias) :], prior, transpose_b=True)
        if self.use_time:
            bucket_bias, slope, unborn = self.freshness_logits(features["t"], cands)
            invalid = tf.logical_or(invalid, unborn)  # not yet published at the watch: no negative
            shared += bucket_bias + slope
        if cfg.logq_correction:
            shared -= tf.gather(self.log_expected, cands)[None, :]

        def softmax_loss(emb: Any, bias: Any) -> Any:
            logits = tf.matmul(query[:, : cfg.embedding_dim], emb, transpose_b=True) + shared
            if cfg.item_bias:
                logits += bias[None, :]
            logits = tf.where(invalid, tf.fill(tf.shape(logits), -1e9), logits)
            return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.range(b), logits=logits))

        loss = softmax_loss(tf.gather(emb_u, where[n_hist:]), tf.gather(bias_u, where[n_hist:]))
        if cfg.content_loss_weight > 0:
            # Every candidate scored as a video no one has watched: trains the content path each batch.
            emb_c, bias_c = self.item_tower.encode(cands, training=training, ids=False)
            loss += cfg.content_loss_weight * softmax_loss(emb_c, bias_c)
        # Replicas' gradients are summed: each contributes its share of the global mean.
        return loss / tf.distribute.get_strategy().num_replicas_in_sync

    def result(self, birth: np.ndarray, new_items: np.ndarray, from_event: np.ndarray) -> TrainResult:
        """The towers as they are now, with the learned freshness table in the layout."""
        table = self.freshness.embeddings.numpy()[:FRESHNESS_BUCKETS, 0] if self.use_time else None
        per_day = float(self.freshness_per_day.numpy()) if self.use_time else 0.0
        layout = layout_of(self.cfg, table, per_day)
        result = TrainResult(self.item_tower, self.user_tower, layout, birth, self.n_items, new_items, history={})
        result.birth_from_event = from_event
        return result


def training_dataset(cfg: TwoTowerConfig, examples: TrainingExamples, t0: float) -> Any:
    """Shuffled batches of the examples (each watch's time in hours since ``t0``)."""
    ts_h = (
        ((examples.ts.astype(np.float64) - t0) / 3600.0).astype(np.float32)
        if examples.ts is not None
        else np.zeros(len(examples.item), np.float32)
    )
    columns = {
        "history": examples.history,
        "user": examples.user,
        "item": examples.item,
        "weight": examples.history_weight(),
        "t": ts_h,
    }
    data = (
        tf.data.Dataset.from_tensor_slices(columns)
        .shuffle(len(examples.item), seed=cfg.seed, reshuffle_each_iteration=True)
        .batch(cfg.batch_size, drop_remainder=True)
        .prefetch(tf.data.AUTOTUNE)
    )
    # Several workers: every worker builds the same batches and takes its share of each one.
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return data.with_options(options)


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

    Loss: ``TwoTowerModel.compute_loss``. item_birth: [n_items] epoch s each video became
    watchable (NaN: unknown; such a video is treated as new when scored, and never as a negative
    in training). birth_from_event: [n_items] bool, True where the birth is the video's first
    event (no earlier publication time): that event's own freshness goes to a bucket of its own,
    since every such video is watched at age 0 by construction and a new video is not. With
    ``validation`` (and patience > 0), NDCG@10 on it is recorded each epoch as ``val_ndcg@10``;
    training stops early and the best epoch's weights are kept.
    """
    if len(examples.item) < 2:
        raise ValueError(f"{len(examples.item)} training example(s): the softmax needs at least 2 per batch")
    if len(examples.item) < cfg.batch_size:  # a small source (a new service): one batch of all it has
        log.warning("%d training examples < batch_size %d: batches of %d", len(examples.item), cfg.batch_size,
                    len(examples.item))  # fmt: skip
        cfg = replace(cfg, batch_size=len(examples.item))
    strategy = distribution()
    if len(examples.item) < cfg.batch_size * strategy.num_replicas_in_sync and strategy.num_replicas_in_sync > 1:
        raise ValueError(f"{len(examples.item)} examples are too few for {strategy.num_replicas_in_sync} workers")
    tf.keras.utils.set_random_seed(cfg.seed)
    n_items = content.num_items
    counts = np.bincount(examples.item, minlength=n_items).astype(np.float64)
    if user_counts is None:
        user_counts = np.bincount(examples.user, minlength=num_users)
    with strategy.scope():
        item_tower, user_tower = build_towers(
            cfg, content, num_users, warm_items=counts > 0, item_counts=counts, user_counts=user_counts
        )
    birth = np.full(n_items, np.nan) if item_birth is None else np.asarray(item_birth, np.float64)
    t0 = float(np.min(examples.ts)) if examples.ts is not None and len(examples.ts) else 0.0
    from_event = np.zeros(n_items, bool) if birth_from_event is None else np.asarray(birth_from_event, bool)
    from_event = from_event | np.isnan(birth)  # no publication time and never watched: born at a first event
    # Expected count of each video among one replica's batch candidates: its share of the batch
    # drawn by frequency (the batch's positives) plus uniform_negatives uniform draws.
    per_replica = cfg.batch_size / strategy.num_replicas_in_sync
    expected = per_replica * counts / max(counts.sum(), 1.0) + cfg.uniform_negatives / n_items
    with strategy.scope():
        model = TwoTowerModel(
            cfg,
            item_tower,
            user_tower,
            use_time=cfg.freshness and examples.ts is not None,
            # Hours since t0; a video with unknown birth is "not yet" at every training time.
            birth_h=np.where(np.isnan(birth), np.inf, (birth - t0) / 3600.0),
            from_event=from_event,
            log_expected=np.log(np.maximum(expected, 1e-12)),
        )
        model.compile(optimizer=tf.keras.optimizers.Adam(learning_rate=cfg.learning_rate))

    def trained() -> TrainResult:
        return model.result(birth, counts == 0, from_event)

    average, stop = training_callbacks(cfg, len(examples.item), validation, trained)
    callbacks = [c for c in (average, stop) if c is not None]
    # One progress line per epoch on a terminal (the CLI); silent in Airflow logs and tests.
    data = training_dataset(cfg, examples, t0)
    fit = model.fit(data, epochs=cfg.epochs, verbose=2 if sys.stderr.isatty() else 0, callbacks=callbacks)
    if average is not None and stop is None:
        average.swap()  # keep the averaged weights
    result = trained()
    result.history = {k: list(map(float, v)) for k, v in fit.history.items()}
    if stop is not None:
        result.history.update(stop.summary())
    return result


def training_callbacks(
    cfg: TwoTowerConfig, n_examples: int, validation: ValidationSet | None, trained: Any
) -> tuple[WeightAverage | None, EarlyStop | None]:
    """The weight average (``weight_average_epochs`` > 0) and early stopping (a validation set and
    patience > 0; judging the averaged weights where there are some) of one training run."""
    average = None
    if cfg.weight_average_epochs > 0:
        steps = max(n_examples // cfg.batch_size, 1)
        average = WeightAverage(1.0 - 1.0 / max(cfg.weight_average_epochs * steps, 1.0))
    stop = None
    if validation is not None and cfg.early_stopping_patience > 0 and len(validation.user):
        stop = EarlyStop(validation, trained, cfg.early_stopping_patience, average)
    return average, stop


class WeightAverage(tf.keras.callbacks.Callback):
    """An exponential moving average of the model's weights, updated after every batch;
    ``swap`` exchanges it with the weights being trained (twice: back as they were)."""

    def __init__(self, decay: float) -> None:
        super().__init__()
        self.decay = decay
        self.average: list[np.ndarray] | None = None

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        # out of place: get_weights gives a 0-d weight as a numpy scalar, which `a *= d` leaves
        # unchanged (it rebinds the name); copies, lest an array share the variable's memory
        now = [np.array(w, copy=True) for w in self.model.get_weights()]
        if self.average is None:
            self.average = now
            return
        d = self.decay
        self.average = [d * a + (1.0 - d) * w for a, w in zip(self.average, now, strict=True)]

    def swap(self) -> None:
        if self.average is None:
            return
        trained = [np.array(w, copy=True) for w in self.model.get_weights()]
        self.model.set_weights(self.average)
        self.average = trained


class EarlyStop(tf.keras.callbacks.Callback):
    """Validation NDCG@10 after each epoch (of ``trained()``, the model as it is, or with
    ``average``'s weights swapped in where there is one), stop after ``patience`` epochs without a
    better one, restore the best epoch's weights (those judged)."""

    def __init__(
        self, validation: ValidationSet, trained: Any, patience: int, average: WeightAverage | None = None
    ) -> None:
        super().__init__()
        self.average = average
        self.validation = validation
        self.trained = trained
        self.patience = patience
        self.scores: list[float] = []
        self.best_weights: list[Any] | None = None

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self.average is not None:
            self.average.swap()  # judged (and kept) as averaged
        score = self.validation.ndcg(self.trained())
        if not self.scores or score > max(self.scores):
            self.best_weights = self.model.get_weights()
        self.scores.append(score)
        if self.average is not None:
            self.average.swap()
        if len(self.scores) - 1 - int(np.argmax(self.scores)) >= self.patience:
            self.model.stop_training = True

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        if self.best_weights is not None:
            self.model.set_weights(self.best_weights)

    def summary(self) -> dict[str, Any]:
        return {
            "val_ndcg@10": self.scores,
            "best_epoch": [int(np.argmax(self.scores)) + 1],
            "validation_users": [len(self.validation.user)],
        }
