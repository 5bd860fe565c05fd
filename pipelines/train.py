"""train: fit the two-tower on the training side of the split and export a versioned model folder.

Export (``<workdir>/models/<version>/``): ``user_tower/`` (SavedModel, signature
``serving_default``: history [b, max_history] int32, user [b] int32 -> embedding [b, d]),
``item_embeddings.npy`` [n_items, d], ``items.json`` and ``users.json`` (index -> id),
``user_tower_numpy.npz`` (the user tower's own layers, for TF-free online scoring in the API),
``item_tower_numpy.npz`` (what scoring a new video from its content alone needs, without TF),
``config.json`` (the model config), ``train_history.json`` (loss and validation NDCG@10 per epoch).

Early stopping: each user's last ``validation_fraction`` of training events (by time) are held
out of fitting; NDCG@10 on them (ranking every video but the user's fitting events) is measured
after each epoch and training stops on a plateau. With ``refit_after_validation`` (default) the
model is then trained again, same seed, on all training events for the best epoch count, so the
latest events are learned from too; otherwise the best epoch's weights are exported. Where tuning
serves several trials as one (``pipelines.fitting.choose_ensemble``), each is refit so and the
export serves the mean of their scores (``recsys.model.ensemble``: the embedding columns are the
members' side by side, the numpy towers hold every member's weights).
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from pipelines import dataset, storage
from pipelines.artifacts import save_user_tower
from pipelines.config import PipelineConfig
from pipelines.fitting import FitData, fit_and_validation, fit_data, fit_model, served_choices
from pipelines.storage import write_json
from recsys.model import TwoTowerConfig
from recsys.online import (
    CAPTIONS_FILE,
    ITEM_TOWER_FILE,
    NUMPY_TOWER_FILE,
    SEARCH_TEXTS_FILE,
    SUMMARIES_FILE,
    export_numpy_item_tower,
    export_numpy_user_tower,
)

log = logging.getLogger(__name__)


def run(cfg: PipelineConfig, run_date: str) -> dict[str, object]:
    ds = dataset.load(cfg, run_date)
    if ds.no_model:  # recorded, not raised: evaluate and publish go on without a model
        summary: dict[str, object] = {"version": None, "trained": False, "reason": ds.no_model}
        write_json(cfg.partition(run_date, "train") / "model.json", summary)
        log.warning("train %s: no model tonight: %s", run_date, ds.no_model)
        return summary
    summary = train_and_export(cfg, run_date, ds)
    if _chief():  # a multi-worker cluster's other workers leave the record to the chief
        write_json(cfg.partition(run_date, "train") / "model.json", summary)
    log.info("train %s: %s", run_date, summary)
    return summary


def _chief() -> bool:
    import os

    if not os.environ.get("TF_CONFIG"):
        return True
    from recsys.model.training import is_chief  # TensorFlow: a worker process has it loaded

    return is_chief()


def train_and_export(cfg: PipelineConfig, run_date: str, ds: dataset.Dataset) -> dict[str, object]:
    """Train on the dataset's training side and export models/<version>/; returns the summary.

    With ``cfg.tune_seconds`` > 0 the model settings that matter are first chosen on the validation
    events within that budget (``pipelines.fitting.auto_tune``); the version id digests the settings
    as configured (the choice is a function of them and the data), the model folder's config.json
    holds the settings chosen."""
    version_cfg = cfg
    t0 = time.perf_counter()
    data = fit_and_validation(ds, cfg.model)
    tuning: dict[str, object] = {}
    if data.validation is not None and cfg.tune_seconds > 0 and len(data.validation.user):
        from pipelines.fitting import auto_tune

        model_cfg, result, tuning = auto_tune(cfg.model, ds, data, cfg.tune_seconds)
        cfg = replace(cfg, model=model_cfg)
    else:
        result = fit_model(cfg.model, ds, data)
        tuning.update(served_choices(cfg.model, result, ds, data))
    # chosen on validation after training (auto_tune: for every trial), applied again to a refit
    prior_weight: dict[str, object] = tuning.get("prior_weight") or {}  # type: ignore[assignment]
    new_videos: dict[str, object] = tuning.get("new_videos") or {}  # type: ignore[assignment]
    if data.validation is not None and cfg.model.refit_after_validation:
        # The validation events are each user's latest training events, the closest to what comes
        # next: refit on all training events for the epoch count early stopping chose.
        data = fit_data(ds, ds.split.train, cfg.model.max_history)
        members: list[dict[str, object]] = (tuning.get("ensemble") or {}).get("members") or []  # type: ignore[union-attr,assignment]
        if len(members) > 1:  # the trials served as one (``pipelines.fitting.choose_ensemble``): each refit
            from recsys.model.ensemble import ensemble_of  # TensorFlow, loaded by training already

            refits = [
                refit(replace(version_cfg.model, **m["setting"]), m["best_epoch"], m["prior_weight_factor"], ds, data)  # type: ignore[arg-type]
                for m in members
            ]
            refits[0].history = {**result.history, "fit_loss": result.history["loss"], **refits[0].history}
            result = ensemble_of(refits)
        else:
            best = int(result.history["best_epoch"][0])
            factor = prior_weight.get("chosen")
            fitted = result.history
            result = refit(cfg.model, best, factor, ds, data)  # type: ignore[arg-type]
            result.history = {**fitted, "fit_loss": fitted["loss"], **result.history}
    if new_videos:
        result.layout = replace(result.layout, **new_videos["chosen"])  # type: ignore[arg-type]
    examples = data.examples

    version = version_cfg.model_version(run_date)
    weights = export(cfg, run_date, version, ds, result, tuning)

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
        "prior_weight_factor": prior_weight.get("chosen"),
        "new_videos": new_videos.get("chosen"),
        "seconds": round(time.perf_counter() - t0, 2),
    }


def refit(
    model_cfg: TwoTowerConfig, epochs: int, prior_factor: float | None, ds: dataset.Dataset, data: FitData
) -> object:
    """``model_cfg`` trained on ``data`` (all training events) for ``epochs``, without early
    stopping, with the content prior's weight factor chosen on validation; its history holds the
    refit's ``loss`` and ``refit``."""
    result = fit_model(replace(model_cfg, epochs=int(epochs), early_stopping_patience=0), ds, data)
    if prior_factor is not None and model_cfg.content_prior:
        result.user_tower.content_weight_factor.assign(float(prior_factor))
    result.history = {"loss": result.history["loss"], "refit": [1.0]}
    return result


def search_texts(cfg: PipelineConfig, run_date: str, items: list[str]) -> list[str]:
    """Each of the version's videos' title, description and tag words (``text_features.video_text``),
    in item order; empty where the run's videos table has none."""
    from pipelines import ingest
    from pipelines.text_features import video_text

    try:
        videos = ingest.load(cfg, run_date).videos
    except FileNotFoundError:
        return [""] * len(items)
    text = {str(r["video_id"]): video_text(r) for r in videos.to_dict("records")}
    return [text.get(v, "") for v in items]


def video_summaries(cfg: PipelineConfig, run_date: str, items: list[str]) -> dict[str, dict[str, object]]:
    """Each of the version's videos' summary (``frame_features``): its frames' times in seconds and
    its strip's file name under ``<workdir>/summaries/``; videos without media have none."""
    from pipelines import frame_features

    try:
        frames = frame_features.load(cfg, run_date)
    except FileNotFoundError:
        return {}
    if "summary_s" not in frames:
        return {}
    wanted = set(items)
    return {
        str(r["video_id"]): {"timestamps_s": [float(t) for t in r["summary_s"]], "strip": f"{r['content_sha256']}.jpg"}
        for r in frames[["video_id", "content_sha256", "summary_s"]].to_dict("records")
        if r["video_id"] in wanted and r["summary_s"] is not None and len(r["summary_s"])
    }


def export(
    cfg: PipelineConfig,
    run_date: str,
    version: str,
    ds: dataset.Dataset,
    result,
    tuning: dict,  # type: ignore[no-untyped-def,type-arg]
) -> dict[str, float] | None:
    """Write ``models/<version>/`` (staged, then swapped in whole); returns the fusion weights."""
    reference_ts = float(ds.split.train["ts"].max())
    final = cfg.model_dir(version)
    if not _chief():  # every worker saves (saving may take part in collectives); the chief's is kept
        import tempfile

        final = Path(tempfile.mkdtemp(prefix="vidrec-worker-")) / version
    # Built in a local folder (SavedModel needs an OS path), then put in place whole, so a reader
    # never sees half a model (``storage.publish_dir``: a rename, or an upload to object storage).
    with storage.staging_dir(final) as staging:
        staging.mkdir(parents=True, exist_ok=True)
        save_user_tower(result.user_tower, staging / "user_tower", cfg.model.max_history)
        np.save(staging / "item_embeddings.npy", result.item_matrix())
        np.save(staging / "item_birth.npy", result.item_birth)
        np.save(staging / "item_birth_from_event.npy", result.birth_from_event)
        write_json(staging / "scoring.json", {**result.layout.to_json(), "reference_ts": reference_ts})
        export_numpy_user_tower(result.user_tower, asdict(cfg.model), staging / NUMPY_TOWER_FILE)
        item_towers = [m.item_tower for m in getattr(result, "members", [result])]
        export_numpy_item_tower(item_towers, ds.content, asdict(cfg.model), staging / ITEM_TOWER_FILE)
        write_json(staging / "items.json", ds.items)
        write_json(staging / "users.json", ds.users)
        write_json(staging / "config.json", {"model": asdict(cfg.model), "run_date": run_date})
        write_json(staging / "train_history.json", result.history)
        write_json(staging / "tuning.json", tuning)
        write_json(staging / SUMMARIES_FILE, video_summaries(cfg, run_date, ds.items))
        # for text search (``recsys.search``): the pretrained caption similarity at full width, and
        # the texts BM25 indexes (lexical and hybrid modes)
        np.save(staging / CAPTIONS_FILE, ds.content.caption.astype(np.float16))
        write_json(staging / SEARCH_TEXTS_FILE, search_texts(cfg, run_date, ds.items))
        from recsys.model.towers import fusion_weights  # TensorFlow, loaded by training already

        weights = fusion_weights(result.item_tower, len(ds.items))
        write_json(staging / "fusion.json", {"fusion": cfg.model.fusion, "mean_modality_weights": weights})
        storage.publish_dir(staging, final)
    if not _chief():
        shutil.rmtree(final.parent, ignore_errors=True)
    return weights
