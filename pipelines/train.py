"""train: fit the two-tower on the training side of the split and export a versioned model folder.

Export (``<workdir>/models/<version>/``): ``user_tower/`` (SavedModel, signature
``serving_default``: history [b, max_history] int32, user [b] int32 -> embedding [b, d]),
``item_embeddings.npy`` [n_items, d], ``items.json`` and ``users.json`` (index -> id),
``user_tower_numpy.npz`` (the user tower's own layers, for TF-free online scoring in the API),
``config.json`` (the model config), ``train_history.json`` (loss and validation NDCG@10 per epoch).

Early stopping: each user's last ``validation_fraction`` of training events (by time) are held
out of fitting; NDCG@10 on them (ranking every video but the user's fitting events) is measured
after each epoch and training stops on a plateau. With ``refit_after_validation`` (default) the
model is then trained again, same seed, on all training events for the best epoch count, so the
latest events are learned from too; otherwise the best epoch's weights are exported.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines import dataset
from pipelines.config import PipelineConfig, write_json
from recsys.model import (
    LoadedUserTower,
    TrainingExamples,
    TwoTowerConfig,
    ValidationSet,
    fusion_weights,
    history_windows,
    item_embeddings,
    last_history,
    save_user_tower,
    train_two_tower,
)
from recsys.online import NUMPY_TOWER_FILE, export_numpy_user_tower
from recsys.split import evaluation_targets, validation_split

log = logging.getLogger(__name__)


def completion(events: pd.DataFrame) -> np.ndarray | None:
    """Each event's watch completion (NaN where unknown), or None when the source has none."""
    return events["completion"].to_numpy(np.float64) if "completion" in events else None


def make_examples(events: pd.DataFrame, num_items: int, max_history: int) -> TrainingExamples:
    user, item, ts = (events[c].to_numpy() for c in ("user_idx", "item_idx", "ts"))
    history, weight = history_windows(user, item, ts, max_history, num_items, completion(events))
    return TrainingExamples(history=history, user=user.astype(np.int32), item=item.astype(np.int32), weight=weight)


def make_validation(
    fit: pd.DataFrame, held_out: pd.DataFrame, num_users: int, num_items: int, max_history: int
) -> ValidationSet:
    """Validation targets: users' held-out items, ranked from their fitting events' history."""
    users, exclude, relevant = evaluation_targets(fit, held_out)
    hist, weight = last_history(
        fit["user_idx"].to_numpy(),
        fit["item_idx"].to_numpy(),
        fit["ts"].to_numpy(),
        num_users,
        max_history,
        num_items,
        completion(fit),
    )
    return ValidationSet(hist[users], weight[users], users.astype(np.int32), exclude, relevant)


def fit_and_validation(ds: dataset.Dataset, model_cfg: TwoTowerConfig) -> tuple[TrainingExamples, ValidationSet | None]:
    """Training examples and (when early stopping is on) the validation set carved from training."""
    train_events, n_users, n_items = ds.split.train, len(ds.users), len(ds.items)
    if model_cfg.early_stopping_patience == 0 or model_cfg.validation_fraction == 0:
        return make_examples(train_events, n_items, model_cfg.max_history), None
    fit, held_out = validation_split(train_events, model_cfg.validation_fraction)
    validation = make_validation(fit, held_out, n_users, n_items, model_cfg.max_history)
    return make_examples(fit, n_items, model_cfg.max_history), validation


def run(cfg: PipelineConfig, run_date: str) -> dict[str, object]:
    summary = train_and_export(cfg, run_date, dataset.load(cfg, run_date))
    write_json(cfg.partition(run_date, "train") / "model.json", summary)
    log.info("train %s: %s", run_date, summary)
    return summary


def train_and_export(cfg: PipelineConfig, run_date: str, ds: dataset.Dataset) -> dict[str, object]:
    """Train on the dataset's training side and export models/<version>/; returns the summary."""
    t0 = time.perf_counter()
    examples, validation = fit_and_validation(ds, cfg.model)
    result = train_two_tower(cfg.model, ds.content, len(ds.users), examples, validation)
    if validation is not None and cfg.model.refit_after_validation:
        # The validation events are each user's latest training events, the closest to what comes
        # next: refit on all training events for the epoch count early stopping chose.
        best = int(result.history["best_epoch"][0])
        all_examples = make_examples(ds.split.train, len(ds.items), cfg.model.max_history)
        refit_cfg = replace(cfg.model, epochs=best, early_stopping_patience=0)
        refit = train_two_tower(refit_cfg, ds.content, len(ds.users), all_examples)
        history = {**result.history, "fit_loss": result.history["loss"], "loss": refit.history["loss"], "refit": [1.0]}
        result = replace(result, item_tower=refit.item_tower, user_tower=refit.user_tower, history=history)
        examples = all_examples

    version = cfg.model_version(run_date)
    final = cfg.model_dir(version)
    staging = final.with_name(f".{version}.staging")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    save_user_tower(result.user_tower, staging / "user_tower", cfg.model.max_history)
    np.save(staging / "item_embeddings.npy", item_embeddings(result.item_tower, len(ds.items)))
    export_numpy_user_tower(result.user_tower, asdict(cfg.model), staging / NUMPY_TOWER_FILE)
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
        "epochs_run": len(result.history.get("fit_loss") or result.history.get("loss", [])),
        "refit_epochs": len(result.history["loss"]) if result.history.get("refit") else None,
        "best_epoch": (result.history.get("best_epoch") or [None])[0],
        "validation_users": (result.history.get("validation_users") or [0])[0],
        "val_ndcg@10": max(result.history["val_ndcg@10"]) if result.history.get("val_ndcg@10") else None,
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
