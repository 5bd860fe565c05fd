"""The exported user tower in plain numpy, for online scoring in the API without TensorFlow.

The user tower reads only item-tower outputs of the history (the exported item embedding
matrix) plus a few small layers; ``export_numpy_user_tower`` saves those layers' weights and
``NumpyUserTower`` repeats the tower's arithmetic (pooling, count feature, optional user-id
embedding, two dense layers, L2 normalisation). A test checks it against the TensorFlow tower.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

NUMPY_TOWER_FILE = "user_tower_numpy.npz"


def export_numpy_user_tower(user_tower: Any, config: dict[str, Any], path: Path) -> None:
    """Save the user tower's own weights (not the item tower's) and the settings the math needs."""
    arrays = {
        "hidden_kernel": user_tower.hidden.kernel.numpy(),
        "hidden_bias": user_tower.hidden.bias.numpy(),
        "out_kernel": user_tower.out.kernel.numpy(),
        "out_bias": user_tower.out.bias.numpy(),
    }
    emb = user_tower.user_embedding
    # Never built when the tower does not use user ids; the rows are then unused.
    built = getattr(emb, "embeddings", None)
    arrays["user_embedding"] = built.numpy() if built is not None else np.zeros((emb.input_dim, 1), np.float32)
    if config["user_pooling"] == "attention":
        arrays["position"] = user_tower.position.numpy()
        arrays["query"] = user_tower.pool_query.numpy()
    keep = ("user_pooling", "completion_weighting", "use_user_id", "max_history", "embedding_dim")
    arrays["config"] = np.frombuffer(json.dumps({k: config[k] for k in keep}).encode(), np.uint8)
    with path.open("wb") as f:
        np.savez(f, **arrays)


class NumpyUserTower:
    def __init__(self, path: Path, item_vectors: np.ndarray) -> None:
        with np.load(path) as z:
            self.w = {k: z[k] for k in z.files if k != "config"}
            self.config = json.loads(z["config"].tobytes().decode())
        self.items = np.concatenate([item_vectors, np.zeros((1, item_vectors.shape[1]), np.float32)])
        self.pad = len(item_vectors)
        self.unknown_user = len(self.w["user_embedding"]) - 1

    def __call__(
        self, history: np.ndarray, weight: np.ndarray | None = None, user: np.ndarray | None = None
    ) -> np.ndarray:
        """history [b, max_history] item indices (``pad`` = none, left-padded); weight [b, max_history]
        completion; user [b] user indices (None: the unknown user) -> [b, d] float32."""
        h = np.where((history >= 0) & (history < self.pad), history, self.pad)
        items = self.items[h]  # [b, n, d]
        mask = (h != self.pad).astype(np.float32)
        count = mask.sum(axis=1, keepdims=True)
        m = mask * np.maximum(weight, 0.05) if self.config["completion_weighting"] and weight is not None else mask
        if self.config["user_pooling"] == "mean":
            pool = m / np.maximum(m.sum(axis=1, keepdims=True), 1e-9)
        else:
            keys = items + self.w["position"][None]
            logits = keys @ self.w["query"] / np.sqrt(self.config["embedding_dim"])
            e = np.exp(logits - logits.max(axis=1, keepdims=True)) * m
            pool = e / np.maximum(e.sum(axis=1, keepdims=True), 1e-9)
        parts = [(pool[:, :, None] * items).sum(axis=1), np.log1p(count)]
        if self.config["use_user_id"]:
            u = np.full(len(h), self.unknown_user) if user is None else user
            parts.append(self.w["user_embedding"][u])
        x = np.maximum(np.concatenate(parts, axis=1) @ self.w["hidden_kernel"] + self.w["hidden_bias"], 0.0)
        out = x @ self.w["out_kernel"] + self.w["out_bias"]
        return (out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)).astype(np.float32)
