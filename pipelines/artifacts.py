"""Model folders on disk: ``<workdir>/models/<version>/`` as the train step exports them, reloaded
in any process (evaluate, publish, the DAG's checks, the ablation). Export: ``pipelines.train``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipelines.config import PipelineConfig
from recsys.model import LoadedUserTower, ScoreLayout, TwoTowerConfig


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

    def item_vectors_at(self, now_s: float | None = None) -> np.ndarray:
        """The item matrix with each item's freshness at ``now_s`` (default: ``reference_ts``)."""
        now = self.reference_ts if now_s is None else now_s
        if now is None:
            return self.item_vectors
        return self.layout.fold_freshness(self.item_vectors, self.item_birth, now, self.birth_from_event)


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
    item_vectors = np.load(path / "item_embeddings.npy")
    scoring = json.loads((path / "scoring.json").read_text()) if (path / "scoring.json").exists() else None
    layout = ScoreLayout.from_json(scoring) if scoring else ScoreLayout(dim=item_vectors.shape[1])
    birth = (
        np.load(path / "item_birth.npy") if (path / "item_birth.npy").exists() else np.full(len(item_vectors), np.nan)
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
        birth_from_event=np.load(path / "item_birth_from_event.npy")
        if (path / "item_birth_from_event.npy").exists()
        else None,
    )
