"""Typed, frozen configuration of the nightly pipeline and where each step writes.

Every step writes only its own partition, ``<workdir>/runs/<run_date>/<step>/``, so a rerun for
the same date overwrites its own outputs and nothing else. Trained models live in
``<workdir>/models/<version>/``; the version is derived from the run date and the training
config, so a rerun of the same night produces the same version id.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

from cache.client import DEFAULT_REDIS_URL
from recsys.frames import SamplingConfig
from recsys.model import TwoTowerConfig
from recsys.protocols import PROTOCOLS

STEPS = ("ingest", "frame_features", "text_features", "dataset", "train", "evaluate", "publish")


@dataclass(frozen=True)
class PipelineConfig:
    source: Path
    """Data-contract folder: videos, comments, events as .csv or .parquet."""
    workdir: Path
    """Where partitions, caches and model versions are written: a local path, or (given as a URL
    to ``pipelines.storage.location``) a ``UPath`` on any fsspec filesystem, e.g. ``s3://``."""
    namespace: str = "demo"
    """Redis namespace: keys are vidrec:{namespace}:..."""
    redis_url: str = DEFAULT_REDIS_URL
    image_encoder: str = "efficientnet-lite0"
    """efficientnet-lite0 (packaged, offline) or keras:{mobilenet_v3_small,mobilenet_v3_large,efficientnet_b0,resnet50,vgg16}."""
    image_runtime: str = "auto"
    """For efficientnet-lite0: onnx (ONNX Runtime, exported once and cached), torch, or auto (onnx if installed)."""
    image_weights: str | None = "imagenet"
    """For keras:* encoders: imagenet (from the Keras cache), a weights file path, or None (random; tests)."""
    text_encoder: str = "all-minilm-l6-v2"
    """all-minilm-l6-v2 (packaged, offline), st:/path/to/sentence-transformers/model, or hashed-ngram."""
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    min_decoded_fraction: float = 0.5
    """A file that decodes fewer of its sampled frames than this is quarantined."""
    frame_shards: int = 2
    """frame_features runs as this many shards (Airflow mapped tasks), then a reduce."""
    summary_frames: int = 3
    """Each video's summary: its K most representative sampled frames (medoids, in time order),
    their timestamps and a JPEG strip of them under ``<workdir>/summaries/`` (0: none)."""
    publish_shards: int = 1
    """publish scores and writes users' lists in this many shards (Airflow mapped tasks; crc32 of
    the user id), then one task verifies them all and flips the live pointer."""
    max_comments_per_video: int = 20
    max_comment_chars: int = 500
    """Each comment and caption is cut to this many characters before encoding."""
    comment_half_life_days: float = 30.0
    """A comment's weight in its video's comments embedding halves every this many days of age."""
    torch_threads: int | None = None
    protocol: str = "global_time"
    """Evaluation split: global_time, user_time, leave_last_out or random (see recsys.split)."""
    test_fraction: float = 0.2
    """Share of events held out (global_time: by time over all; user_time: per user; random)."""
    topk: int = 100
    """Length of each user's published list."""
    similar_k: int = 50
    """Length of each video's published similar-videos list."""
    ann_min_items: int = 250_000
    """From this catalogue size, publish's top-k uses a faiss IVF index instead of exact scoring."""
    popular_window_days: int = 28
    ttl_seconds: int = 3 * 86400
    """Versioned keys expire after this (2-3x the nightly refresh), so a failed night leaves the previous lists."""
    publish_gate: bool = True
    """Hold back a model that is worse than the live one on gate_metric (same protocol)."""
    gate_metric: str = "ndcg@10"
    gate_tolerance: float = 0.0
    """How far below the live model's gate_metric a new model may be and still be published."""
    version_grace_seconds: int = 3600
    """Versions older than the previous one are UNLINKed once published this long ago."""
    fresh_per_user: int = 5
    """``vidrec fresh`` picks this many of the new videos per user (by the live model's score),
    of which the API mixes ``fresh_per_answer`` (its setting) into each answer."""
    land_events: bool = True
    """Ingest also lands the events posted to the API (the Redis stream, ``pipelines.landing``) and
    trains on them with the source's; without Redis it goes on with what was landed before."""
    tune_seconds: float = 150.0
    """Before training, choose the model settings that matter (temperature, whether to use video
    ids, id dropout by frequency, learning rate) on the validation events within about this many
    seconds (``pipelines.tune.auto_tune``); 0 trains ``model`` as given."""
    model: TwoTowerConfig = field(default_factory=TwoTowerConfig)

    def __post_init__(self) -> None:
        from pipelines.storage import location

        object.__setattr__(self, "workdir", location(self.workdir))  # str, Path or URL
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {PROTOCOLS}, got {self.protocol!r}")
        if not 0.0 < self.test_fraction < 1.0:
            raise ValueError(f"test_fraction must be in (0, 1), got {self.test_fraction}")
        if (
            min(
                self.frame_shards,
                self.publish_shards,
                self.topk,
                self.ttl_seconds,
                self.max_comments_per_video,
                self.max_comment_chars,
            )
            <= 0
        ):
            raise ValueError(
                "frame_shards, publish_shards, topk, ttl_seconds, max_comments_per_video, max_comment_chars must be positive"
            )
        if not 0 <= self.summary_frames <= 16:
            raise ValueError(f"summary_frames must be in 0..16, got {self.summary_frames}")
        if not 0.0 <= self.min_decoded_fraction <= 1.0:
            raise ValueError(f"min_decoded_fraction must be in [0, 1], got {self.min_decoded_fraction}")

    def partition(self, run_date: str, step: str) -> Path:
        if step not in STEPS:
            raise ValueError(f"unknown step {step!r}; steps are {STEPS}")
        return self.workdir / "runs" / parse_run_date(run_date).isoformat() / step

    def model_version(self, run_date: str) -> str:
        """``YYYYMMDD-<digest>``: the run date and a digest of what the model was trained on (data
        source, feature extraction, split, model settings). Models from different sources or
        encoders in one workdir get different folders; the same run repeated gets the same id."""
        trained_on = {
            "source": str(Path(self.source).resolve()),
            "features": {
                "image_encoder": self.image_encoder,
                "image_weights": self.image_weights,
                "text_encoder": self.text_encoder,
                "sampling": asdict(self.sampling),
                "max_comments_per_video": self.max_comments_per_video,
                "max_comment_chars": self.max_comment_chars,
                "comment_half_life_days": self.comment_half_life_days,
            },
            "model": asdict(self.model),
            "protocol": self.protocol,
            "test_fraction": self.test_fraction,
            "tune_seconds": self.tune_seconds,
        }
        digest = hashlib.sha256(json.dumps(trained_on, sort_keys=True).encode()).hexdigest()[:8]
        return f"{parse_run_date(run_date).strftime('%Y%m%d')}-{digest}"

    def model_dir(self, version: str) -> Path:
        return self.workdir / "models" / version


def shard_of(key: str, num_shards: int) -> int:
    """Stable shard of an id (crc32 of it mod ``num_shards``), the same in every process and run:
    frame_features' videos, publish's users."""
    return zlib.crc32(key.encode()) % num_shards


def parse_run_date(run_date: str) -> dt.date:
    """The run date as a date; tasks take it explicitly and never read the clock."""
    try:
        return dt.date.fromisoformat(str(run_date)[:10])
    except ValueError as exc:
        raise ValueError(f"run date must be YYYY-MM-DD, got {run_date!r}") from exc


def run_date_end_epoch_s(run_date: str) -> int:
    """End of the run date (exclusive), UTC epoch seconds: events at or after it are not yet known."""
    day = parse_run_date(run_date) + dt.timedelta(days=1)
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp())
