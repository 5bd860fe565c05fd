"""frame_features: sample frames by seeking, embed them with a pretrained CNN, mean-pool per video.

Edge: ``sample_frames`` opens a file with OpenCV and decodes only the sampled frames.
Core: ``compute_frame_features`` turns decoded frames into one embedding per video.
A video whose file is missing, won't open or yields too few frames is quarantined with the
reason; the run goes on. Embeddings are cached by (file content hash, encoder, sampling), so a
rerun or a nightly run over an unchanged catalogue decodes and embeds nothing again.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines import ingest
from pipelines.config import PipelineConfig, write_json, write_parquet
from recsys.encoders import ImageEncoder, get_image_encoder
from recsys.frames import mean_pool, uniform_frame_indices

log = logging.getLogger(__name__)

MAX_PIXELS = 4096 * 2160  # beyond 4K: refuse rather than risk memory on a bogus header


class VideoDecodeError(Exception):
    """A video that cannot be used; ``str(exc)`` is the quarantine reason."""


@dataclass(frozen=True)
class SampledFrames:
    frames: np.ndarray  # [n, h, w, 3] uint8 RGB
    frame_count_meta: int
    fps_meta: float
    indices: np.ndarray  # frame indices that decoded


def sample_frames(path: Path, num_samples: int, min_decoded_fraction: float) -> SampledFrames:
    """Decode ``num_samples`` frames spread over the file by seeking; raise VideoDecodeError."""
    import cv2

    if not path.is_file():
        raise VideoDecodeError("missing file")
    if path.stat().st_size == 0:
        raise VideoDecodeError("empty file")
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise VideoDecodeError("cannot open video")
        frame_count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        fps = float(cap.get(cv2.CAP_PROP_FPS))
        width, height = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        if frame_count <= 0 or not np.isfinite(fps) or fps <= 0:
            raise VideoDecodeError(f"bad metadata (frames={frame_count}, fps={fps})")
        if width * height > MAX_PIXELS:
            raise VideoDecodeError(f"resolution {width}x{height} too large")
        wanted = uniform_frame_indices(frame_count, num_samples)
        frames, decoded = [], []
        for idx in wanted:
            # Seek, then decode one frame: the cost follows the frames sampled, not the length.
            cap.set(cv2.CAP_PROP_POS_FRAMES, int(idx))
            ok, frame = cap.read()
            if ok and frame is not None:
                frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
                decoded.append(int(idx))
    finally:
        cap.release()
    if not frames:
        raise VideoDecodeError("zero frames decoded")
    if len(frames) < min_decoded_fraction * len(wanted):
        raise VideoDecodeError(f"decoded {len(frames)} of {len(wanted)} sampled frames (truncated or damaged)")
    return SampledFrames(np.stack(frames), frame_count, fps, np.asarray(decoded))


def compute_frame_features(frames_by_video: dict[str, np.ndarray], encoder: ImageEncoder) -> dict[str, np.ndarray]:
    """{video_id: [n_frames, h, w, 3] uint8 RGB} -> {video_id: [dim] float32 mean-pooled embedding}.

    All frames go through the encoder in one batched pass, then are split back per video.
    """
    if not frames_by_video:
        return {}
    ids = list(frames_by_video)
    sizes = {f.shape[1:] for f in frames_by_video.values()}
    if len(sizes) == 1:
        emb = encoder.encode(np.concatenate([frames_by_video[v] for v in ids]))
    else:  # mixed resolutions: encode per video (the encoder resizes each frame itself)
        emb = np.concatenate([encoder.encode(frames_by_video[v]) for v in ids])
    out, start = {}, 0
    for vid in ids:
        n = len(frames_by_video[vid])
        out[vid] = mean_pool(emb[start : start + n])
        start += n
    return out


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def run(cfg: PipelineConfig, run_date: str) -> dict[str, float]:
    t0 = time.perf_counter()
    videos = ingest.load(cfg, run_date).videos
    encoder = get_image_encoder(cfg.image_encoder, cfg.torch_threads)
    cache_dir = cfg.workdir / "cache" / "frames" / f"{encoder.name}-{encoder.version}-n{cfg.frames_per_video}"
    cache_dir.mkdir(parents=True, exist_ok=True)

    rows, quarantine, pending, pending_keys = [], [], {}, {}
    frames_decoded = cached = 0
    for vid, media in zip(videos["video_id"], videos["media_file"], strict=True):
        if not media:
            continue  # no file: the video is text-only, which is allowed
        path = Path(media)
        try:
            key = file_sha256(path) if path.is_file() else None
            if key and (cache_dir / f"{key}.npy").exists():
                rows.append((vid, key, np.load(cache_dir / f"{key}.npy")))
                cached += 1
                continue
            sampled = sample_frames(path, cfg.frames_per_video, cfg.min_decoded_fraction)
        except VideoDecodeError as exc:
            quarantine.append({"video_id": vid, "media_file": media, "reason": str(exc)})
            log.warning("quarantined video %s (%s): %s", vid, media, exc)
            continue
        frames_decoded += len(sampled.frames)
        pending[vid], pending_keys[vid] = sampled.frames, key

    embedded = compute_frame_features(pending, encoder)
    for vid, emb in embedded.items():
        np.save(cache_dir / f"{pending_keys[vid]}.npy", emb)
        rows.append((vid, pending_keys[vid], emb))

    rows.sort(key=lambda r: r[0])
    features = pd.DataFrame(
        {
            "video_id": [r[0] for r in rows],
            "content_sha256": [r[1] for r in rows],
            "embedding": [r[2].astype(np.float32).tolist() for r in rows],
        }
    )
    features["encoder"] = f"{encoder.name}@{encoder.version}"
    out = cfg.partition(run_date, "frame_features")
    write_parquet(out / "frame_features.parquet", features)
    write_parquet(out / "quarantine.parquet", pd.DataFrame(quarantine, columns=["video_id", "media_file", "reason"]))
    summary = {
        "videos_seen": int((videos["media_file"] != "").sum()),
        "embedded": len(embedded),
        "skipped_unchanged": cached,
        "quarantined": len(quarantine),
        "frames_decoded": frames_decoded,
        "seconds": round(time.perf_counter() - t0, 2),
    }
    write_json(out / "summary.json", summary)
    log.info("frame_features %s: %s", run_date, summary)
    return summary


def load(cfg: PipelineConfig, run_date: str) -> pd.DataFrame:
    path = cfg.partition(run_date, "frame_features") / "frame_features.parquet"
    if not path.exists():
        raise FileNotFoundError(f"no frame features for {run_date} at {path}; run the frame_features step first")
    return pd.read_parquet(path)


def load_quarantine(cfg: PipelineConfig, run_date: str) -> pd.DataFrame:
    """Videos whose media file could not be used, with the reason (columns video_id, media_file, reason)."""
    path = cfg.partition(run_date, "frame_features") / "quarantine.parquet"
    if not path.exists():
        raise FileNotFoundError(f"no frame features for {run_date} at {path}; run the frame_features step first")
    return pd.read_parquet(path)
