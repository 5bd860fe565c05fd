"""Two-tower training throughput (examples per second), next to the training step's unavoidable
core measured in the same run.

    python -m benchmarks.train [--items N] [--users N] [--examples N] [--epochs E]

Synthetic catalogue (caption and visual vectors of the real encoders' widths, 384 and 1280) and
watch histories; the default model settings (concat fusion, every modality, mean pooling, mixed
negatives, freshness). Ours: ``train_two_tower`` examples/s over the epochs after the first
(graph tracing excluded). Reference: the same number of batches of the loss's own matrix products
alone (the in-batch logits, batch x candidates x dim, forward and backward as three GEMMs) in
TensorFlow: what no implementation of this loss avoids.
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import replace

import numpy as np

from benchmarks._report import report


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=20_000)
    ap.add_argument("--users", type=int, default=20_000)
    ap.add_argument("--examples", type=int, default=100_000)
    ap.add_argument("--epochs", type=int, default=3)
    args = ap.parse_args()
    if args.epochs < 2:
        ap.error("--epochs must be >= 2 (the first epoch is set-up and tracing)")

    from recsys.model.config import TwoTowerConfig, ensure_keras2
    from recsys.model.data import ItemContent, TrainingExamples

    ensure_keras2()
    import tensorflow as tf

    from recsys.model.training import train_two_tower

    rng = np.random.default_rng(0)
    n, m = args.items, args.examples
    ones = np.ones(n, np.float32)
    content = ItemContent(
        rng.normal(size=(n, 1280)).astype(np.float32), ones,
        rng.normal(size=(n, 384)).astype(np.float32), ones,
        np.zeros((n, 384), np.float32), np.zeros(n, np.float32),
    )  # fmt: skip
    cfg = TwoTowerConfig(epochs=args.epochs, early_stopping_patience=0)
    popularity = rng.zipf(1.3, size=m) % n
    history = np.where(rng.random((m, cfg.max_history)) < 0.7, rng.zipf(1.3, (m, cfg.max_history)) % n, n)
    examples = TrainingExamples(
        history=history.astype(np.int32),
        user=rng.integers(0, args.users, m).astype(np.int32),
        item=popularity.astype(np.int32),
        ts=np.sort(rng.uniform(0, 30 * 86400, m)),
    )
    # One epoch (model building and graph tracing included), then ``epochs``: the difference is
    # the steady rate of the epochs after the first.
    t0 = time.perf_counter()
    train_two_tower(replace(cfg, epochs=1), content, args.users, examples)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    result = train_two_tower(cfg, content, args.users, examples)
    total = time.perf_counter() - t0
    batches = m // cfg.batch_size
    ours = m * (args.epochs - 1) / max(total - first, 1e-9)

    q = tf.random.normal([cfg.batch_size, cfg.embedding_dim])
    c = tf.random.normal([cfg.batch_size + cfg.uniform_negatives, cfg.embedding_dim])

    @tf.function
    def core(q, c):  # forward logits, then the two gradient products
        logits = tf.matmul(q, c, transpose_b=True)
        return tf.matmul(logits, c), tf.matmul(logits, q, transpose_a=True)

    core(q, c)
    t0 = time.perf_counter()
    for _ in range(batches):
        core(q, c)
    reference = m / (time.perf_counter() - t0)
    report(
        "train",
        [
            {
                "figure": "training examples per second",
                "ours": ours,
                "reference": reference,
                "ratio": ours / reference,
                "target": 0.0,
                "reference_is": "the loss's in-batch logit GEMMs alone (forward + backward), same batches",
            }
        ],
        {
            "items": n,
            "users": args.users,
            "examples": m,
            "epochs": args.epochs,
            "batch_size": cfg.batch_size,
            "first_epoch_s": round(first, 1),
            "final_loss": round(float(result.history["loss"][-1]), 3),
            "cpus": os.cpu_count(),
        },
    )


if __name__ == "__main__":
    main()
