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
    ScoreLayout,
    TrainingExamples,
    TrainResult,
    TwoTowerConfig,
    ValidationSet,
    fusion_weights,
    history_windows,
    last_history,
    save_user_tower,
    train_two_tower,
)
from recsys.online import NUMPY_TOWER_FILE, export_numpy_user_tower
from recsys.split import GLOBAL_TIME, evaluation_targets, validation_split

log = logging.getLogger(__name__)


def completion(events: pd.DataFrame) -> np.ndarray | None:
    """Each event's watch completion (NaN where unknown), or None when the source has none."""
    return events["completion"].to_numpy(np.float64) if "completion" in events else None


def make_examples(events: pd.DataFrame, num_items: int, max_history: int) -> TrainingExamples:
    user, item, ts = (events[c].to_numpy() for c in ("user_idx", "item_idx", "ts"))
    history, weight = history_windows(user, item, ts, max_history, num_items, completion(events))
    return TrainingExamples(
        history=history, user=user.astype(np.int32), item=item.astype(np.int32), weight=weight, ts=ts.astype(np.int64)
    )


def item_birth(events: pd.DataFrame, published_at: np.ndarray | None, num_items: int) -> tuple[np.ndarray, np.ndarray]:
    """([num_items] epoch s each video became watchable as far as ``events`` tell: the earlier of
    its publication time and its first event, NaN when neither is known (never watched, no date);
    [num_items] bool: True where that is the first event, not a publication time)."""
    first = np.full(num_items, np.inf)
    np.minimum.at(first, events["item_idx"].to_numpy(), events["ts"].to_numpy().astype(np.float64))
    published = (
        np.full(num_items, np.inf) if published_at is None else np.where(np.isnan(published_at), np.inf, published_at)
    )
    birth = np.fmin(first, published)
    from_event = np.isfinite(first) & (first < published)
    return np.where(np.isfinite(birth), birth, np.nan), from_event


def first_event_ts(events: pd.DataFrame, num_users: int) -> np.ndarray:
    """[num_users] each user's earliest event time in ``events`` (epoch s; NaN for users without one)."""
    out = np.full(num_users, np.inf)
    np.minimum.at(out, events["user_idx"].to_numpy(), events["ts"].to_numpy().astype(np.float64))
    return np.where(np.isfinite(out), out, np.nan)


def reference_times(train: pd.DataFrame, held_out: pd.DataFrame, protocol: str, num_users: int) -> np.ndarray:
    """[num_users] the time each user's list is judged at (epoch s), for freshness: under
    global_time the split time (what a nightly publish at that time knows), otherwise the time of
    the user's first held-out event (when they came back and asked: a live service knows the time
    of a request, never what it leads to); the last training event where there is none."""
    if protocol == GLOBAL_TIME:
        cutoff = float(held_out["ts"].min()) if len(held_out) else float(train["ts"].max())
        return np.full(num_users, cutoff)
    now = first_event_ts(held_out, num_users)
    last = np.full(num_users, -np.inf)
    np.maximum.at(last, train["user_idx"].to_numpy(), train["ts"].to_numpy().astype(np.float64))
    return np.where(np.isnan(now), np.where(np.isfinite(last), last, float(train["ts"].max())), now)


def user_event_counts(events: pd.DataFrame, num_users: int) -> np.ndarray:
    return np.bincount(events["user_idx"].to_numpy(), minlength=num_users)


def make_validation(
    fit: pd.DataFrame,
    held_out: pd.DataFrame,
    num_users: int,
    num_items: int,
    max_history: int,
    protocol: str = GLOBAL_TIME,
) -> ValidationSet:
    """Validation targets: users' held-out items, ranked from their fitting events' history, with
    freshness judged at each user's last fitting event."""
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
    now = reference_times(fit, held_out, protocol, num_users)[users]
    return ValidationSet(hist[users], weight[users], users.astype(np.int32), exclude, relevant, now)


@dataclass(frozen=True)
class FitData:
    """What one training run fits on: examples, per-video birth times, per-user event counts."""

    examples: TrainingExamples
    item_birth: np.ndarray
    birth_from_event: np.ndarray
    user_counts: np.ndarray
    validation: ValidationSet | None = None


def fit_data(ds: dataset.Dataset, events: pd.DataFrame, max_history: int) -> FitData:
    n_users, n_items = len(ds.users), len(ds.items)
    birth, from_event = item_birth(events, ds.published_at, n_items)
    return FitData(make_examples(events, n_items, max_history), birth, from_event, user_event_counts(events, n_users))


def fit_and_validation(ds: dataset.Dataset, model_cfg: TwoTowerConfig) -> FitData:
    """Training data and (when early stopping is on) the validation set carved from training."""
    train_events, n_users, n_items = ds.split.train, len(ds.users), len(ds.items)
    if model_cfg.early_stopping_patience == 0 or model_cfg.validation_fraction == 0:
        return fit_data(ds, train_events, model_cfg.max_history)
    fit, held_out = validation_split(train_events, model_cfg.validation_fraction, ds.split.protocol)
    validation = make_validation(fit, held_out, n_users, n_items, model_cfg.max_history, ds.split.protocol)
    return replace(fit_data(ds, fit, model_cfg.max_history), validation=validation)


def fit_model(cfg: TwoTowerConfig, ds: dataset.Dataset, data: FitData) -> TrainResult:
    return train_two_tower(
        cfg,
        ds.content,
        len(ds.users),
        data.examples,
        data.validation,
        data.item_birth,
        data.user_counts,
        data.birth_from_event,
    )


def run(cfg: PipelineConfig, run_date: str) -> dict[str, object]:
    ds = dataset.load(cfg, run_date)
    if ds.no_model:  # recorded, not raised: evaluate and publish go on without a model
        summary: dict[str, object] = {"version": None, "trained": False, "reason": ds.no_model}
        write_json(cfg.partition(run_date, "train") / "model.json", summary)
        log.warning("train %s: no model tonight: %s", run_date, ds.no_model)
        return summary
    summary = train_and_export(cfg, run_date, ds)
    write_json(cfg.partition(run_date, "train") / "model.json", summary)
    log.info("train %s: %s", run_date, summary)
    return summary


def train_and_export(cfg: PipelineConfig, run_date: str, ds: dataset.Dataset) -> dict[str, object]:
    """Train on the dataset's training side and export models/<version>/; returns the summary.

    With ``cfg.tune_seconds`` > 0 the model settings that matter are first chosen on the validation
    events within that budget (``pipelines.tune.auto_tune``); the version id digests the settings
    as configured (the choice is a function of them and the data), the model folder's config.json
    holds the settings chosen."""
    version_cfg = cfg
    t0 = time.perf_counter()
    data = fit_and_validation(ds, cfg.model)
    tuning: dict[str, object] = {}
    if data.validation is not None and cfg.tune_seconds > 0 and len(data.validation.user):
        from pipelines.tune import auto_tune

        model_cfg, result, tuning = auto_tune(cfg.model, ds, data, cfg.tune_seconds)
        cfg = replace(cfg, model=model_cfg)
    else:
        result = fit_model(cfg.model, ds, data)
    if data.validation is not None and cfg.model.refit_after_validation:
        # The validation events are each user's latest training events, the closest to what comes
        # next: refit on all training events for the epoch count early stopping chose.
        best = int(result.history["best_epoch"][0])
        data = fit_data(ds, ds.split.train, cfg.model.max_history)
        refit_cfg = replace(cfg.model, epochs=best, early_stopping_patience=0)
        refit = fit_model(refit_cfg, ds, data)
        refit.history = {
            **result.history,
            "fit_loss": result.history["loss"],
            "loss": refit.history["loss"],
            "refit": [1.0],
        }
        result = refit
    examples = data.examples
    reference_ts = float(ds.split.train["ts"].max())

    version = version_cfg.model_version(run_date)
    final = cfg.model_dir(version)
    staging = final.with_name(f".{version}.staging")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    save_user_tower(result.user_tower, staging / "user_tower", cfg.model.max_history)
    np.save(staging / "item_embeddings.npy", result.item_matrix())
    np.save(staging / "item_birth.npy", result.item_birth)
    np.save(staging / "item_birth_from_event.npy", result.birth_from_event)
    write_json(staging / "scoring.json", {**result.layout.to_json(), "reference_ts": reference_ts})
    export_numpy_user_tower(result.user_tower, asdict(cfg.model), staging / NUMPY_TOWER_FILE)
    write_json(staging / "items.json", ds.items)
    write_json(staging / "users.json", ds.users)
    write_json(staging / "config.json", {"model": asdict(cfg.model), "run_date": run_date})
    write_json(staging / "train_history.json", result.history)
    write_json(staging / "tuning.json", tuning)
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
        "new_items": int(result.new_items.sum()) if result.new_items is not None else 0,
        "freshness": result.layout.to_json().get("freshness"),
        "freshness_per_day": result.layout.freshness_per_day,
        "tuning": {k: tuning[k] for k in ("chosen", "trials", "seconds", "budget_seconds") if k in tuning},
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
