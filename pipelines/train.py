"""train: fit the two-tower on the training side of the split and export a versioned model folder.

Export (``<workdir>/models/<version>/``): ``user_tower/`` (SavedModel, signature
``serving_default``: history [b, max_history] int32, user [b] int32 -> embedding [b, d]),
``item_embeddings.npy`` [n_items, d], ``items.json`` and ``users.json`` (index -> id),
``config.json`` (the model config), ``train_history.json`` (loss per epoch).
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from pipelines import dataset
from pipelines.config import PipelineConfig, write_json
from recsys.model import (
    LoadedUserTower,
    TrainingExamples,
    TwoTowerConfig,
    fusion_weights,
    history_windows,
    item_embeddings,
    save_user_tower,
    train_two_tower,
)

log = logging.getLogger(__name__)


def make_examples(ds: dataset.Dataset, max_history: int) -> TrainingExamples:
    train = ds.split.train
    user, item, ts = (train[c].to_numpy() for c in ("user_idx", "item_idx", "ts"))
    history = history_windows(user, item, ts, max_history, pad_index=len(ds.items))
    return TrainingExamples(history=history, user=user.astype(np.int32), item=item.astype(np.int32))


def run(cfg: PipelineConfig, run_date: str) -> dict[str, object]:
    summary = train_and_export(cfg, run_date, dataset.load(cfg, run_date))
    write_json(cfg.partition(run_date, "train") / "model.json", summary)
    log.info("train %s: %s", run_date, summary)
    return summary


def train_and_export(cfg: PipelineConfig, run_date: str, ds: dataset.Dataset) -> dict[str, object]:
    """Train on the dataset's training side and export models/<version>/; returns the summary."""
    t0 = time.perf_counter()
    examples = make_examples(ds, cfg.model.max_history)
    result = train_two_tower(cfg.model, ds.content, len(ds.users), examples)

    version = cfg.model_version(run_date)
    final = cfg.model_dir(version)
    staging = final.with_name(f".{version}.staging")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    save_user_tower(result.user_tower, staging / "user_tower", cfg.model.max_history)
    np.save(staging / "item_embeddings.npy", item_embeddings(result.item_tower, len(ds.items)))
    write_json(staging / "items.json", ds.items)
    write_json(staging / "users.json", ds.users)
    write_json(staging / "config.json", {"model": asdict(cfg.model), "run_date": run_date})
    write_json(staging / "train_history.json", result.history)
    weights = fusion_weights(result.item_tower, len(ds.items))
    write_json(staging / "fusion.json", {"fusion": cfg.model.fusion, "mean_modality_weights": weights})
    # Swap the finished folder in whole, so a reader never sees half a model.
    shutil.rmtree(final, ignore_errors=True)
    staging.rename(final)

    return {
        "version": version,
        "examples": len(examples.item),
        "final_loss": result.history["loss"][-1] if result.history.get("loss") else None,
        "fusion": cfg.model.fusion,
        "modalities": list(cfg.model.modalities),
        "fusion_weights": weights,
        "seconds": round(time.perf_counter() - t0, 2),
    }


@dataclass
class ExportedModel:
    """A model folder reloaded from disk (in any process)."""

    version: str
    path: Path
    items: list[str]
    users: list[str]
    item_vectors: np.ndarray
    config: TwoTowerConfig
    user_tower: LoadedUserTower


def load_model(cfg: PipelineConfig, run_date: str) -> ExportedModel:
    """The model trained by this run date's train step (never "the latest")."""
    pointer = cfg.partition(run_date, "train") / "model.json"
    if not pointer.exists():
        raise FileNotFoundError(f"no trained model for {run_date} at {pointer}; run the train step first")
    return load_model_version(cfg, json.loads(pointer.read_text())["version"])


def load_model_version(cfg: PipelineConfig, version: str) -> ExportedModel:
    path = cfg.model_dir(version)
    if not (path / "config.json").exists():
        raise FileNotFoundError(f"model version {version} not found under {path}")
    conf = json.loads((path / "config.json").read_text())["model"]
    return ExportedModel(
        version=version,
        path=path,
        items=json.loads((path / "items.json").read_text()),
        users=json.loads((path / "users.json").read_text()),
        item_vectors=np.load(path / "item_embeddings.npy"),
        config=TwoTowerConfig(**conf),
        user_tower=LoadedUserTower(path / "user_tower"),
    )
