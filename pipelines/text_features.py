"""text_features: caption (title + description + tags) and comments through a pretrained text encoder.

Caption and comments are separate modalities. A video's comments embedding is the mean of its
top comments' embeddings (most liked first, at most ``max_comments_per_video``), re-normalised.
A video with an empty caption or no comments gets a zero vector and a 0 presence flag: the
model masks that modality instead of learning from made-up text.
"""

from __future__ import annotations

import logging
import re
import time

import numpy as np
import pandas as pd

from pipelines import ingest
from pipelines.config import PipelineConfig, write_json, write_parquet
from recsys.encoders import TextEncoder, get_text_encoder

log = logging.getLogger(__name__)

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_URL = re.compile(r"https?://\S+")


def clean_text(text: str, max_chars: int) -> str:
    """Strip URLs and control characters, collapse whitespace, truncate to ``max_chars``."""
    text = _URL.sub(" ", _CONTROL.sub(" ", text))
    return " ".join(text.split())[:max_chars]


def caption_text(title: str, description: str, tags: str) -> str:
    tag_words = " ".join(t.strip() for t in re.split(r"[|,;]", tags) if t.strip())
    return " ".join(p for p in (title.strip(), description.strip(), tag_words) if p)


def compute_text_features(
    videos: pd.DataFrame, comments: pd.DataFrame, encoder: TextEncoder, max_comments: int, max_chars: int
) -> pd.DataFrame:
    """One row per video: caption and comments embeddings ([dim] lists) with presence flags."""
    captions = [
        clean_text(caption_text(t, d, g), max_chars)
        for t, d, g in zip(videos["title"], videos["description"], videos["tags"], strict=True)
    ]
    has_caption = np.array([bool(c) for c in captions])
    caption_emb = np.zeros((len(videos), encoder.dim), np.float32)
    if has_caption.any():
        caption_emb[has_caption] = encoder.encode([c for c in captions if c])

    top = (
        comments.assign(text=comments["text"].map(lambda t: clean_text(t, max_chars)))
        .query("text != ''")
        .drop_duplicates(["video_id", "text"])
        .sort_values(["video_id", "likes", "comment_id"], ascending=[True, False, True], kind="stable")
        .groupby("video_id", sort=False)
        .head(max_comments)
    )
    comment_emb = encoder.encode(top["text"].tolist()) if len(top) else np.zeros((0, encoder.dim), np.float32)
    pos = {vid: i for i, vid in enumerate(videos["video_id"])}
    sums = np.zeros((len(videos), encoder.dim), np.float64)
    counts = np.zeros(len(videos), np.int64)
    rows = top["video_id"].map(pos).to_numpy()
    np.add.at(sums, rows, comment_emb)
    np.add.at(counts, rows, 1)
    norms = np.linalg.norm(sums, axis=1, keepdims=True)
    comments_emb = np.where(norms > 0, sums / np.maximum(norms, 1e-12), 0.0).astype(np.float32)

    return pd.DataFrame(
        {
            "video_id": videos["video_id"].to_numpy(),
            "caption": captions,
            "has_caption": has_caption,
            "caption_embedding": list(caption_emb),
            "num_comments": counts,
            "has_comments": counts > 0,
            "comments_embedding": list(comments_emb),
        }
    )


def run(cfg: PipelineConfig, run_date: str) -> dict[str, float]:
    t0 = time.perf_counter()
    src = ingest.load(cfg, run_date)
    encoder = get_text_encoder(cfg.text_encoder, cfg.torch_threads)
    features = compute_text_features(
        src.videos, src.comments, encoder, cfg.max_comments_per_video, cfg.max_comment_chars
    )
    features["encoder"] = f"{encoder.name}@{encoder.version}"
    for col in ("caption_embedding", "comments_embedding"):
        features[col] = features[col].map(lambda a: np.asarray(a, np.float32).tolist())
    out = cfg.partition(run_date, "text_features")
    write_parquet(out / "text_features.parquet", features)
    summary = {
        "videos": len(features),
        "with_caption": int(features["has_caption"].sum()),
        "with_comments": int(features["has_comments"].sum()),
        "comments_embedded": int(features["num_comments"].sum()),
        "seconds": round(time.perf_counter() - t0, 2),
    }
    write_json(out / "summary.json", summary)
    log.info("text_features %s: %s", run_date, summary)
    return summary


def load(cfg: PipelineConfig, run_date: str) -> pd.DataFrame:
    path = cfg.partition(run_date, "text_features") / "text_features.parquet"
    if not path.exists():
        raise FileNotFoundError(f"no text features for {run_date} at {path}; run the text_features step first")
    return pd.read_parquet(path)
