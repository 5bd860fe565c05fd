"""dataset: the item/user vocabularies, content arrays aligned to them, and the time split.

Every valid video is in the item vocabulary, watched or not (cold videos are scored from content).
Every user with an event is in the user vocabulary.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines import frame_features, ingest, storage, text_features
from pipelines.config import PipelineConfig
from pipelines.storage import write_json, write_parquet
from recsys.model import ItemContent
from recsys.split import Split, TooFewEvents, make_split

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Dataset:
    items: list[str]
    users: list[str]
    content: ItemContent
    split: Split  # train and test events, with user_idx and item_idx
    published_at: np.ndarray | None = None
    """[n_items] each video's publication time (epoch s), NaN where the source does not say."""
    no_model: str | None = None
    """Why no model can be trained on this dataset (no events, too few to split); None when one can."""


def _stack(col: pd.Series, dim: int) -> np.ndarray:
    return np.stack([np.asarray(v, np.float32) for v in col]) if len(col) else np.zeros((0, dim), np.float32)


def build_content(
    items: list[str], frames: pd.DataFrame, texts: pd.DataFrame, visual_dim: int, text_dim: int
) -> ItemContent:
    """Align per-video features to the item order; absent modalities are zero rows with mask 0."""
    pos = {v: i for i, v in enumerate(items)}
    n = len(items)
    visual, visual_mask = np.zeros((n, visual_dim), np.float32), np.zeros(n, np.float32)
    frames = frames[frames["video_id"].isin(pos)]
    if len(frames):
        rows = frames["video_id"].map(pos).to_numpy()
        visual[rows] = _stack(frames["embedding"], visual_dim)
        visual_mask[rows] = 1.0
    caption, comments = np.zeros((n, text_dim), np.float32), np.zeros((n, text_dim), np.float32)
    caption_mask, comments_mask = np.zeros(n, np.float32), np.zeros(n, np.float32)
    sentiment = np.zeros(n, np.float32)
    texts = texts[texts["video_id"].isin(pos)]
    if len(texts):
        rows = texts["video_id"].map(pos).to_numpy()
        caption[rows] = _stack(texts["caption_embedding"], text_dim)
        comments[rows] = _stack(texts["comments_embedding"], text_dim)
        caption_mask[rows] = texts["has_caption"].to_numpy(np.float32)
        comments_mask[rows] = texts["has_comments"].to_numpy(np.float32)
        if "sentiment" in texts:  # features written before sentiment existed have none
            sentiment[rows] = np.nan_to_num(texts["sentiment"].to_numpy(np.float32))
    return ItemContent(visual, visual_mask, caption, caption_mask, comments, comments_mask, sentiment)


def split_or_reason(events: pd.DataFrame, protocol: str, test_fraction: float, seed: int) -> tuple[Split, str | None]:
    """The split, or an empty one and why no model can be trained tonight (a new service on day one,
    or too few events to hold any out). The run goes on: features, a popular-only publish, a report
    that says why."""
    if events.empty:
        return Split(protocol, events, events), "no events yet: the source's events table has no valid rows"
    try:
        split = make_split(events, protocol, test_fraction, seed=seed)
    except TooFewEvents as exc:  # a data shortage; a configuration error still raises
        return Split(protocol, events.iloc[:0], events.iloc[:0]), f"too few events to split ({len(events)}): {exc}"
    if split.train.empty:
        return split, f"no training events under {protocol} ({len(events)} events)"
    return split, None


def run(cfg: PipelineConfig, run_date: str) -> dict[str, object]:
    src = ingest.load(cfg, run_date)
    frames = frame_features.load(cfg, run_date)
    texts = text_features.load(cfg, run_date)
    items = sorted(src.videos["video_id"])
    users = sorted(src.events["user_id"].unique())
    visual_dim = len(frames["embedding"].iloc[0]) if len(frames) else 1
    text_dim = len(texts["caption_embedding"].iloc[0]) if len(texts) else 1
    content = build_content(items, frames, texts, visual_dim, text_dim)
    ipos, upos = {v: i for i, v in enumerate(items)}, {u: i for i, u in enumerate(users)}
    events = src.events.assign(
        item_idx=src.events["video_id"].map(ipos).astype("int32"),
        user_idx=src.events["user_id"].map(upos).astype("int32"),
    )
    split, no_model = split_or_reason(events, cfg.protocol, cfg.test_fraction, cfg.model.seed)
    published = (
        src.videos.set_index("video_id")["published_at"].reindex(items).to_numpy(np.float64)
        if "published_at" in src.videos
        else np.full(len(items), np.nan)
    )

    out = cfg.partition(run_date, "dataset")
    write_json(out / "items.json", items)
    write_json(out / "users.json", users)
    storage.save_npz(out / "content.npz", **{f: getattr(content, f) for f in content.__dataclass_fields__})
    storage.save_npy(out / "published.npy", published)
    write_parquet(out / "train.parquet", split.train)
    write_parquet(out / "test.parquet", split.test)
    summary = {
        **split.describe(),
        "items": len(items),
        "users": len(users),
        "items_with_visual": int(content.visual_mask.sum()),
        "items_with_caption": int(content.caption_mask.sum()),
        "items_with_comments": int(content.comments_mask.sum()),
        **({"no_model": no_model} if no_model else {}),
    }
    write_json(out / "split.json", summary)
    log.info("dataset %s: %s", run_date, summary)
    return summary


def load(cfg: PipelineConfig, run_date: str) -> Dataset:
    out: Path = cfg.partition(run_date, "dataset")
    if not (out / "split.json").exists():
        raise FileNotFoundError(f"no dataset for {run_date} under {out}; run the dataset step first")
    content = ItemContent(**storage.load_npz(out / "content.npz"))
    meta = json.loads((out / "split.json").read_text())
    split = Split(
        meta["protocol"],
        storage.read_parquet(out / "train.parquet"),
        storage.read_parquet(out / "test.parquet"),
        meta.get("cutoff_ts"),
    )
    items = json.loads((out / "items.json").read_text())
    published = (
        storage.load_npy(out / "published.npy") if (out / "published.npy").exists() else np.full(len(items), np.nan)
    )
    return Dataset(
        items=items,
        users=json.loads((out / "users.json").read_text()),
        content=content,
        split=split,
        published_at=published,
        no_model=meta.get("no_model"),
    )
