"""text_features: caption (title + description + tags) and comments through a pretrained text encoder.

Caption and comments are separate modalities. A video's comments embedding is the weighted mean
of its comments' embeddings, re-normalised: weight = (1 + ln(1 + likes)) x 0.5 ** (age_days /
half_life_days), the ``max_comments_per_video`` heaviest after cleaning (URLs and control
characters stripped, whitespace collapsed, cut to ``max_comment_chars``) and deduplication.
A video with an empty caption or no comments gets a zero vector and a 0 presence flag: the
model masks that modality instead of learning from made-up text.

Incremental: embeddings are cached by (encoder name and version, SHA-1 of the exact text), so a
nightly run encodes only texts it has not seen.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines import ingest, storage
from pipelines.config import PipelineConfig, run_date_end_epoch_s
from pipelines.storage import write_json, write_parquet
from recsys.encoders import TextEncoder, get_text_encoder

log = logging.getLogger(__name__)

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_URL = re.compile(r"https?://\S+")


class CachedTextEncoder:
    """Wraps a text encoder with a persistent cache keyed by the SHA-1 of each exact text."""

    def __init__(self, encoder: TextEncoder, path: Path) -> None:
        self.encoder, self.path = encoder, path
        self.name, self.version, self.dim = encoder.name, encoder.version, encoder.dim
        self._cache: dict[str, np.ndarray] = {}
        if path.exists():
            df = storage.read_parquet(path)
            self._cache = {k: np.asarray(v, np.float32) for k, v in zip(df["key"], df["embedding"], strict=True)}
        self.hits = self.misses = 0
        self._dirty = False

    def encode(self, texts: list[str]) -> np.ndarray:
        keys = [hashlib.sha1(t.encode("utf-8", "replace")).hexdigest() for t in texts]
        todo = sorted({k: t for k, t in zip(keys, texts, strict=True) if k not in self._cache}.items())
        if todo:
            for (k, _), emb in zip(todo, self.encoder.encode([t for _, t in todo]), strict=True):
                self._cache[k] = emb
            self._dirty = True
        self.misses += len(todo)
        self.hits += len(texts) - len(todo)
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        return np.stack([self._cache[k] for k in keys]).astype(np.float32)

    def save(self) -> None:
        if self._dirty:
            df = pd.DataFrame({"key": list(self._cache), "embedding": [v.tolist() for v in self._cache.values()]})
            write_parquet(self.path, df)
            self._dirty = False


def clean_text(text: str, max_chars: int) -> str:
    """Strip URLs and control characters, collapse whitespace, truncate to ``max_chars``."""
    text = _URL.sub(" ", _CONTROL.sub(" ", text))
    return " ".join(text.split())[:max_chars]


def caption_text(title: str, description: str, tags: str) -> str:
    tag_words = " ".join(t.strip() for t in re.split(r"[|,;]", tags) if t.strip())
    return " ".join(p for p in (title.strip(), description.strip(), tag_words) if p)


def video_text(row: dict) -> str:  # type: ignore[type-arg]
    """``caption_text`` of a videos-table row (missing or NaN fields: empty)."""
    fields = [row.get(c) for c in ("title", "description", "tags")]
    return caption_text(*("" if v is None or (isinstance(v, float) and v != v) else str(v) for v in fields))


def compute_text_features(
    videos: pd.DataFrame,
    comments: pd.DataFrame,
    encoder: TextEncoder,
    max_comments: int,
    max_chars: int,
    now_epoch_s: float = 0.0,
    half_life_days: float = 30.0,
) -> pd.DataFrame:
    """One row per video: caption and comments embeddings ([dim] lists) with presence flags.

    ``now_epoch_s`` is the end of the run date (comment ages are measured from it).
    """
    captions = [
        clean_text(caption_text(t, d, g), max_chars)
        for t, d, g in zip(videos["title"], videos["description"], videos["tags"], strict=True)
    ]
    has_caption = np.array([bool(c) for c in captions])
    caption_emb = np.zeros((len(videos), encoder.dim), np.float32)
    if has_caption.any():
        caption_emb[has_caption] = encoder.encode([c for c in captions if c])

    c = comments.assign(text=comments["text"].map(lambda t: clean_text(t, max_chars)))
    c = c[c["text"] != ""].drop_duplicates(["video_id", "text"])
    created = pd.to_numeric(c["created_at"], errors="coerce") if "created_at" in c else pd.Series(np.nan, index=c.index)
    age_days = ((now_epoch_s - created) / 86400.0).clip(lower=0).fillna(0.0)
    # weight (1 + log(1 + likes)) * 0.5 ** (age / half-life), taken in log space and relative to the
    # video's heaviest comment: only the ratios matter, and years-old comments (MovieLens tags)
    # would otherwise underflow to weights too small to average or normalise
    log_weight = np.log1p(np.log1p(c["likes"].clip(lower=0))) - np.log(2.0) * age_days / half_life_days
    c = c.assign(log_weight=log_weight)
    top = (
        c.sort_values(["video_id", "log_weight", "comment_id"], ascending=[True, False, True], kind="stable")
        .groupby("video_id", sort=False)
        .head(max_comments)
    )
    top = top.assign(weight=np.exp(top["log_weight"] - top.groupby("video_id")["log_weight"].transform("max")))
    pos = {vid: i for i, vid in enumerate(videos["video_id"])}
    top = top[top["video_id"].isin(pos)]
    comment_emb = encoder.encode(top["text"].tolist())
    sums = np.zeros((len(videos), encoder.dim), np.float64)
    counts = np.zeros(len(videos), np.int64)
    # astype: an empty comments table maps to an empty column of the ids' dtype, not int
    rows = top["video_id"].map(pos).to_numpy().astype(np.int64)
    np.add.at(sums, rows, comment_emb * top["weight"].to_numpy(np.float64)[:, None])
    np.add.at(counts, rows, 1)
    norms = np.linalg.norm(sums, axis=1, keepdims=True)
    comments_emb = np.where(norms > 0, sums / np.maximum(norms, 1e-12), 0.0).astype(np.float32)
    sentiment, coverage = comment_sentiment(top["text"].tolist(), top["weight"].to_numpy(np.float64), rows, len(videos))

    return pd.DataFrame(
        {
            "video_id": videos["video_id"].to_numpy(),
            "caption": captions,
            "has_caption": has_caption,
            "caption_embedding": list(caption_emb),
            "num_comments": counts,
            "has_comments": counts > 0,
            "comments_embedding": list(comments_emb),
            "sentiment": sentiment,
            "sentiment_coverage": coverage,
        }
    )


def comment_sentiment(
    texts: list[str], weights: np.ndarray, rows: np.ndarray, num_videos: int
) -> tuple[np.ndarray, np.ndarray]:
    """([num_videos] each video's comment sentiment in -1..1, NaN without comments; [num_videos]
    the share of its comments with any word VADER knows, NaN without comments).

    The score is VADER's compound score (``vaderSentiment``: an English lexicon with rules for
    negation, intensifiers, capitals, emoji; offline) averaged over the video's comments with the
    weights of its comments embedding (likes and recency). Other languages: VADER knows English
    words only, so a comment in another language scores 0 (neutral) unless it holds emoji or
    English words; ``sentiment_coverage`` says how much of a video's comments the lexicon read,
    and a low one means its score says little."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyzer = SentimentIntensityAnalyzer()
    score = np.zeros(len(texts))
    hit = np.zeros(len(texts))
    for i, text in enumerate(texts):
        polarity = analyzer.polarity_scores(text)
        score[i] = polarity["compound"]
        hit[i] = float(polarity["neu"] < 1.0)
    total = np.zeros(num_videos)
    weight = np.zeros(num_videos)
    hits = np.zeros(num_videos)
    count = np.zeros(num_videos)
    np.add.at(total, rows, score * weights)
    np.add.at(weight, rows, weights)
    np.add.at(hits, rows, hit)
    np.add.at(count, rows, 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (
            np.where(weight > 0, total / np.maximum(weight, 1e-12), np.nan),
            np.where(count > 0, hits / np.maximum(count, 1.0), np.nan),
        )


def run(cfg: PipelineConfig, run_date: str) -> dict[str, float]:
    t0 = time.perf_counter()
    src = ingest.load(cfg, run_date)
    base = get_text_encoder(cfg.text_encoder, cfg.torch_threads)
    cache_name = f"{base.name}-{base.version}".replace(":", "_").replace("/", "_")
    encoder = CachedTextEncoder(base, cfg.workdir / "cache" / "text" / f"{cache_name}.parquet")
    features = compute_text_features(
        src.videos,
        src.comments,
        encoder,
        cfg.max_comments_per_video,
        cfg.max_comment_chars,
        now_epoch_s=run_date_end_epoch_s(run_date),
        half_life_days=cfg.comment_half_life_days,
    )
    encoder.save()
    features["encoder"] = f"{encoder.name}@{encoder.version}"
    for col in ("caption_embedding", "comments_embedding"):
        features[col] = features[col].map(lambda a: np.asarray(a, np.float32).tolist())
    out = cfg.partition(run_date, "text_features")
    write_parquet(out / "text_features.parquet", features)
    summary = {
        "videos": len(features),
        "with_caption": int(features["has_caption"].sum()),
        "with_comments": int(features["has_comments"].sum()),
        "comments_used": int(features["num_comments"].sum()),
        "sentiment_mean": round(float(features["sentiment"].mean()), 4)
        if features["sentiment"].notna().any()
        else None,
        "sentiment_coverage": round(float(features["sentiment_coverage"].mean()), 4)
        if features["sentiment_coverage"].notna().any()
        else None,
        "texts_encoded": encoder.misses,
        "texts_from_cache": encoder.hits,
        "seconds": round(time.perf_counter() - t0, 2),
    }
    write_json(out / "summary.json", summary)
    log.info("text_features %s: %s", run_date, summary)
    return summary


def load(cfg: PipelineConfig, run_date: str) -> pd.DataFrame:
    path = cfg.partition(run_date, "text_features") / "text_features.parquet"
    if not path.exists():
        raise FileNotFoundError(f"no text features for {run_date} at {path}; run the text_features step first")
    return storage.read_parquet(path)
