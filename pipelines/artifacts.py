"""Model folders on disk: ``<workdir>/models/<version>/`` as the train step writes them
(``pipelines.train``), reloaded in any process (evaluate, publish, the DAG's checks, the
ablation); the user tower as a SavedModel (``save_user_tower``, ``LoadedUserTower``).
TensorFlow is imported inside the functions that need it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipelines import storage
from pipelines.config import PipelineConfig
from recsys.model import TwoTowerConfig, ensure_keras2
from recsys.retrieval import Catalogue
from recsys.scoring import ScoreLayout


@dataclass
class ExportedModel:
    """A model folder reloaded from disk (in any process)."""

    version: str
    path: Path
    items: list[str]
    users: list[str]
    item_vectors: np.ndarray
    """[n_items, D]: each item's side of the score (``ScoreLayout``), freshness not folded in."""
    config: TwoTowerConfig
    user_tower: LoadedUserTower
    layout: ScoreLayout
    item_birth: np.ndarray
    """[n_items] epoch s each video became watchable (NaN: unknown, scored as new)."""
    reference_ts: float | None
    """The latest training event: "now" for the model when nothing later is known."""
    birth_from_event: np.ndarray | None = None
    """[n_items] bool: the birth is the video's first training event (no publication time)."""

    def catalogue(self) -> Catalogue:
        """The item side of the score, for ``recsys.retrieval.rank``."""
        return Catalogue(self.item_vectors, self.layout, self.item_birth, self.birth_from_event)


def load_model(cfg: PipelineConfig, run_date: str) -> ExportedModel:
    """The model trained by this run date's train step (never "the latest")."""
    pointer = cfg.partition(run_date, "train") / "model.json"
    if not pointer.exists():
        raise FileNotFoundError(f"no trained model for {run_date} at {pointer}; run the train step first")
    summary = json.loads(pointer.read_text())
    if summary.get("version") is None:
        raise NoModel(summary.get("reason", "the train step recorded no model"))
    return load_model_version(cfg, summary["version"])


class NoModel(RuntimeError):
    """The run date's train step ran and trained nothing (``str()``: why); not an error of the run."""


def load_model_version(cfg: PipelineConfig, version: str) -> ExportedModel:
    path = cfg.model_dir(version)
    if not (path / "config.json").exists():
        raise FileNotFoundError(f"model version {version} not found under {path}")
    conf = json.loads((path / "config.json").read_text())["model"]
    item_vectors = storage.load_npy(path / "item_embeddings.npy")
    scoring = json.loads((path / "scoring.json").read_text()) if (path / "scoring.json").exists() else None
    layout = ScoreLayout.from_json(scoring) if scoring else ScoreLayout(dim=item_vectors.shape[1])
    birth = (
        storage.load_npy(path / "item_birth.npy")
        if (path / "item_birth.npy").exists()
        else np.full(len(item_vectors), np.nan)
    )
    return ExportedModel(
        version=version,
        path=path,
        items=json.loads((path / "items.json").read_text()),
        users=json.loads((path / "users.json").read_text()),
        item_vectors=item_vectors,
        config=TwoTowerConfig(**conf),
        user_tower=LoadedUserTower(path / "user_tower"),
        layout=layout,
        item_birth=birth,
        reference_ts=scoring.get("reference_ts") if scoring else None,
        birth_from_event=storage.load_npy(path / "item_birth_from_event.npy")
        if (path / "item_birth_from_event.npy").exists()
        else None,
    )


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

        with storage.local_copy(path) as local:  # the SavedModel loader opens files by OS path
            self._fn = tf.saved_model.load(str(local)).signatures["serving_default"]
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
