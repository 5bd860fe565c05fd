"""``vidrec fresh``: videos uploaded since the live version was trained, recommendable the same hour.

1. Ingest and features for the run date (the frame and text caches make this incremental: only
   the new clips are decoded and encoded).
2. The videos the live version does not know (and whose media is not quarantined) are scored
   from their content by the live model's numpy item tower (``recsys.online.NumpyItemTower``;
   no TensorFlow, no retraining), their freshness folded in at their publication time.
3. Published as an addendum to the live version, through ``cache.writer.write_if_live`` (only
   while that version is live; expiring with it): each new video's similar-video list (its
   neighbours among the catalogue and the other new videos), and the ``fresh`` lists, overall and
   per category, best first by the model's learned watchability (item bias and freshness).
   New videos reach the popular lists once they are watched (the next nightly publish).
4. The new videos' rows are kept under ``<workdir>/fresh/<version>/`` for the serving side.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cache import keys
from cache.packed import VocabBytes, encode_matrix
from cache.writer import connect, write_if_live
from pipelines import storage
from pipelines.config import PipelineConfig
from pipelines.storage import write_json
from recsys.online import ITEM_TOWER_FILE, NumpyItemTower
from recsys.retrieval import top_k
from recsys.scoring import ScoreLayout

log = logging.getLogger(__name__)


def new_videos(cfg: PipelineConfig, run_date: str, known: set[str]) -> pd.DataFrame:
    """The source's playable videos the live version does not know (ingest partition rows)."""
    from pipelines import frame_features, ingest

    videos = ingest.load(cfg, run_date).videos
    unplayable = set(frame_features.load_quarantine(cfg, run_date)["video_id"])
    return videos[~videos["video_id"].isin(known) & ~videos["video_id"].isin(unplayable)].sort_values("video_id")


def new_content(cfg: PipelineConfig, run_date: str, ids: list[str], tower: NumpyItemTower) -> object:
    """``ItemContent`` of the new videos, at the widths the live model was trained on."""
    from pipelines import frame_features, text_features
    from pipelines.dataset import build_content

    frames = frame_features.load(cfg, run_date)
    texts = text_features.load(cfg, run_date)
    visual_dim, text_dim = len(tower.w["visual_mean"]), len(tower.w["caption_mean"])
    return build_content(
        ids, frames[frames["video_id"].isin(ids)], texts[texts["video_id"].isin(ids)], visual_dim, text_dim
    )


@dataclass(frozen=True)
class LiveModel:
    """What ``vidrec fresh`` reads of the live version's model folder, once."""

    path: Path
    items: list[str]
    layout: ScoreLayout
    item_rows: np.ndarray
    """[n_items, layout.total] the catalogue's item rows (``item_embeddings.npy``)."""

    @classmethod
    def load(cls, path: Path) -> LiveModel:
        layout = ScoreLayout.from_json(json.loads((path / "scoring.json").read_text()))
        items = json.loads((path / "items.json").read_text())
        return cls(path, items, layout, storage.load_npy(path / "item_embeddings.npy"))


def addendum(
    model: LiveModel, videos: pd.DataFrame, rows: np.ndarray, k: int
) -> tuple[dict[str, bytes], dict[str, tuple[list[str], list[float]]]]:
    """(the new videos' encoded similar lists by id, fresh lists by category ("" = all)). ``rows``:
    the new videos' item rows with freshness folded in."""
    layout, items = model.layout, model.items
    ids = videos["video_id"].tolist()
    catalogue = layout.similarity_vectors(model.item_rows)
    new = layout.similarity_vectors(rows)
    idx, scores = top_k(new, np.concatenate([catalogue, new]), k, [np.array([len(items) + j]) for j in range(len(ids))])
    vocab = VocabBytes(items + ids)
    buf, off = encode_matrix(vocab, idx, scores)
    similar = {v: buf[off[j] : off[j + 1]].tobytes() for j, v in enumerate(ids)}
    watchability = rows[:, layout.bias_col] if layout.bias_col is not None else np.zeros(len(ids), np.float32)
    order = np.argsort(-watchability, kind="stable")
    fresh: dict[str, tuple[list[str], list[float]]] = {
        "": ([ids[j] for j in order], [float(watchability[j]) for j in order])
    }
    categories = videos["category"].fillna("").to_numpy() if "category" in videos else np.full(len(ids), "")
    for category in sorted(set(categories) - {""}):
        members = [j for j in order if categories[j] == category]
        fresh[str(category)] = ([ids[j] for j in members], [float(watchability[j]) for j in members])
    return similar, fresh


def user_picks(
    cfg: PipelineConfig, run_date: str, version: str, model: LiveModel, rows: np.ndarray, ids: list[str]
) -> dict[str, bytes]:
    """For every user of the live version with events, the ``fresh_per_user`` new videos that
    best match them: the numpy user tower over their latest watches, scored against the new
    videos' rows (the same dot product that ranked their published list). Keyed for Redis."""
    from pipelines import fitting, ingest
    from recsys.model import last_history
    from recsys.online import NUMPY_TOWER_FILE, NumpyUserTower

    users, items = json.loads((model.path / "users.json").read_text()), model.items
    uidx, iidx = {u: i for i, u in enumerate(users)}, {v: i for i, v in enumerate(items)}
    events = ingest.load(cfg, run_date).events
    known = events[events["user_id"].isin(uidx) & events["video_id"].isin(iidx)]
    if known.empty or cfg.fresh_per_user <= 0:
        return {}
    u, i = known["user_id"].map(uidx).to_numpy(), known["video_id"].map(iidx).to_numpy()
    tower = NumpyUserTower(model.path / NUMPY_TOWER_FILE, model.item_rows)
    max_history = int(tower.config["max_history"])
    hist, weight = last_history(
        u, i, known["ts"].to_numpy(), len(users), max_history, len(items), fitting.completion(known)
    )
    active = np.unique(u)
    n = min(cfg.fresh_per_user, len(ids))
    out: dict[str, bytes] = {}
    for s in range(0, len(active), 4096):
        block = active[s : s + 4096]
        scores = tower(hist[block], weight[block], block) @ rows.T
        top = np.argsort(-scores, axis=1, kind="stable")[:, :n]
        for r, user in enumerate(block):
            picked = top[r]
            out[keys.fresh_user_key(cfg.namespace, version, users[user])] = keys.encode_items(
                [ids[j] for j in picked], [float(scores[r, j]) for j in picked]
            )
    return out


def run(cfg: PipelineConfig, run_date: str) -> dict[str, object]:
    from pipelines.nightly import run_nightly

    t0 = time.perf_counter()
    run_nightly(cfg, run_date, ("ingest", "frame_features", "text_features"))
    client = connect(cfg.redis_url)
    try:
        raw = client.get(keys.live_key(cfg.namespace))
        if raw is None:
            return {"version": None, "fresh": 0, "reason": "no live version: run the nightly job first"}
        version = raw.decode()
        model_dir = cfg.model_dir(version)
        if not (model_dir / ITEM_TOWER_FILE).exists():
            return {"version": version, "fresh": 0, "reason": f"{model_dir} has no {ITEM_TOWER_FILE} (retrain once)"}
        model = LiveModel.load(model_dir)
        videos = new_videos(cfg, run_date, set(model.items))
        if videos.empty:
            return {"version": version, "fresh": 0, "seconds": round(time.perf_counter() - t0, 2)}
        tower = NumpyItemTower(model_dir / ITEM_TOWER_FILE)
        ids = videos["video_id"].tolist()
        # scored as the version scores its own videos without training events (``new_video_rows``)
        rows = model.layout.new_video_rows(tower.rows(new_content(cfg, run_date, ids, tower)))
        published = pd.to_numeric(videos.get("published_at"), errors="coerce") if "published_at" in videos else None
        birth = published.to_numpy(np.float64) if published is not None else np.full(len(ids), np.nan)
        rows = model.layout.fold_freshness(rows, birth, time.time())  # unknown birth: new (the first bucket)
        similar, fresh = addendum(model, videos, rows, cfg.similar_k)
        values = {keys.similar_key(cfg.namespace, version, v): b for v, b in similar.items()}
        values |= {
            keys.fresh_key(cfg.namespace, version, c or None): keys.encode_items(*lst) for c, lst in fresh.items()
        }
        picks = user_picks(cfg, run_date, version, model, rows, ids)
        values |= picks
        written, names = 0, list(values)
        for s in range(0, len(names), 5000):  # one script per 5,000 keys: Redis stays responsive
            got = write_if_live(client, cfg.namespace, version, {n: values[n] for n in names[s : s + 5000]})
            if got < 0:
                written = got
                break
            written += got
    finally:
        client.close()
    out = cfg.workdir / "fresh" / version
    storage.save_npy(out / "rows.npy", rows)
    write_json(out / "items.json", ids)
    summary = {
        "version": version,
        "fresh": len(ids),
        "written": written,
        "categories": sorted(c for c in fresh if c),
        "users_with_picks": len(picks),
        "seconds": round(time.perf_counter() - t0, 2),
    }
    if written < 0:
        summary["reason"] = "the live version changed or expired while scoring; nothing written"
    log.info("fresh %s: %s", run_date, summary)
    return summary
