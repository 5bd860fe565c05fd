"""Frame sampling plans, scene-change selection, segments and pooling.

Pure functions on counts and arrays: no decoding here (that is ``pipelines.frame_features``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

import numpy as np

STRATEGIES = ("uniform", "fps", "scene")
POOLINGS = ("mean", "max", "distinct")
SEEKS = ("keyframe", "exact")


@dataclass(frozen=True)
class SamplingConfig:
    """Which frames of a video are decoded, and how their embeddings become one vector.

    * ``uniform``: ``num_frames`` frames spread evenly over the clip.
    * ``fps``: one frame every 1 / ``frames_per_second`` seconds.
    * ``scene``: candidates at ``scene_probe_fps``; keep the first and every candidate whose
      colour histogram moved more than ``scene_threshold`` (total variation, 0..1) from the
      previous candidate; the largest jumps win when there are more than ``max_frames``.
    Every strategy is capped at ``max_frames`` (spread evenly). Frames are grouped into segments
    of ``segment_seconds``; a segment's embedding is the mean of its frames; the video's
    embedding pools its segments by ``pooling``.
    """

    strategy: str = "uniform"
    num_frames: int = 4
    frames_per_second: float = 1.0
    max_frames: int = 32
    scene_probe_fps: float = 2.0
    scene_threshold: float = 0.25
    segment_seconds: float = 60.0
    pooling: str = "mean"
    max_side_px: int = 320
    """Decoded frames are downscaled so their longer side is at most this (memory stays bounded)."""
    seek: str = "keyframe"
    """How each planned frame is reached: ``keyframe`` moves it to the nearest keyframe when one is
    within half the gap to its neighbours (one decoded frame per sample; PyAV), ``exact`` decodes
    forward from the keyframe before it to the very frame (OpenCV)."""

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"sampling strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {self.pooling!r}")
        if min(self.num_frames, self.max_frames, self.max_side_px) <= 0:
            raise ValueError("num_frames, max_frames and max_side_px must be positive")
        if self.seek not in SEEKS:
            raise ValueError(f"seek must be one of {SEEKS}, got {self.seek!r}")
        if min(self.frames_per_second, self.scene_probe_fps, self.segment_seconds) <= 0:
            raise ValueError("frames_per_second, scene_probe_fps and segment_seconds must be positive")

    def key(self) -> str:
        """A short stable id of everything that changes which frames are sampled or how they pool."""
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:10]


def uniform_frame_indices(frame_count: int, num_samples: int) -> np.ndarray:
    """Indices of ``num_samples`` frames spread evenly over a clip of ``frame_count`` frames.

    Each index is the centre of one of ``num_samples`` equal slices, so the first and last
    frames (often black or a title card) are avoided. Fewer frames than asked gives every frame.

    >>> uniform_frame_indices(10, 2).tolist()
    [2, 7]
    """
    if num_samples <= 0:
        raise ValueError(f"num_samples must be positive, got {num_samples}")
    if frame_count <= 0:
        return np.zeros(0, dtype=np.int64)
    if frame_count <= num_samples:
        return np.arange(frame_count, dtype=np.int64)
    step = frame_count / num_samples
    return np.floor(step * (np.arange(num_samples) + 0.5)).astype(np.int64)


def rate_frame_indices(frame_count: int, fps: float, frames_per_second: float) -> np.ndarray:
    """One frame every 1 / frames_per_second seconds, starting half a period in.

    >>> rate_frame_indices(100, 25.0, 1.0).tolist()  # 4 s at 25 fps: t = 0.5, 1.5, 2.5, 3.5 s
    [12, 37, 62, 87]
    """
    if fps <= 0 or frames_per_second <= 0:
        raise ValueError(f"fps and frames_per_second must be positive, got {fps}, {frames_per_second}")
    period = fps / frames_per_second  # frames between samples
    idx = np.floor(np.arange(period / 2, frame_count, period)).astype(np.int64)
    if len(idx) == 0 and frame_count > 0:  # a clip shorter than half a period: its middle frame
        return np.array([frame_count // 2], np.int64)
    return idx


def cap_evenly(indices: np.ndarray, max_frames: int) -> np.ndarray:
    """At most ``max_frames`` of ``indices``, spread evenly over them."""
    if len(indices) <= max_frames:
        return indices
    return indices[uniform_frame_indices(len(indices), max_frames)]


def plan_frame_indices(cfg: SamplingConfig, frame_count: int, fps: float) -> np.ndarray:
    """Frames to decode for the ``uniform`` and ``fps`` strategies, or the scene candidates."""
    if cfg.strategy == "uniform":
        return uniform_frame_indices(frame_count, min(cfg.num_frames, cfg.max_frames))
    rate = cfg.frames_per_second if cfg.strategy == "fps" else cfg.scene_probe_fps
    idx = rate_frame_indices(frame_count, fps, rate)
    # Scene candidates get a larger cap: selection cuts them down to max_frames afterwards.
    return cap_evenly(idx, cfg.max_frames if cfg.strategy == "fps" else 8 * cfg.max_frames)


def colour_histogram(frame: np.ndarray, bins: int = 8) -> np.ndarray:
    """[h, w, 3] uint8 -> [bins**3] joint RGB histogram summing to 1 (cheap scene signature)."""
    q = (frame[::4, ::4].reshape(-1, 3).astype(np.int64) * bins) // 256
    codes = (q[:, 0] * bins + q[:, 1]) * bins + q[:, 2]
    hist = np.bincount(codes, minlength=bins**3).astype(np.float64)
    return hist / max(hist.sum(), 1.0)


def select_scene_changes(histograms: np.ndarray, threshold: float, max_frames: int) -> np.ndarray:
    """Positions (into the candidates) of the first candidate and of each scene change.

    histograms: [n, bins] rows summing to 1. A change is a total-variation distance
    0.5 * sum |h_i - h_{i-1}| above ``threshold``. Over ``max_frames`` the largest jumps are
    kept (the first candidate always is). Returned sorted.
    """
    if len(histograms) == 0:
        return np.zeros(0, np.int64)
    jumps = 0.5 * np.abs(np.diff(histograms, axis=0)).sum(axis=1)  # jump into candidate i+1
    changes = np.flatnonzero(jumps > threshold) + 1
    if len(changes) + 1 > max_frames:
        strongest = np.argsort(-jumps[changes - 1], kind="stable")[: max_frames - 1]
        changes = changes[strongest]
    return np.sort(np.concatenate([[0], changes])).astype(np.int64)


def segment_ids(frame_indices: np.ndarray, fps: float, segment_seconds: float) -> np.ndarray:
    """Segment number of each frame: floor(time / segment_seconds)."""
    return np.floor(np.asarray(frame_indices) / fps / segment_seconds).astype(np.int64)


def pool_segments(frame_embeddings: np.ndarray, segments: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean of the frame embeddings in each segment.

    frame_embeddings: [n_frames, dim]; segments: [n_frames] segment numbers.
    Returns (segment numbers [n_segments], segment embeddings [n_segments, dim]).
    """
    if len(frame_embeddings) == 0:
        raise ValueError("no frame embeddings to pool")
    ids, inverse = np.unique(segments, return_inverse=True)
    sums = np.zeros((len(ids), frame_embeddings.shape[1]), np.float64)
    np.add.at(sums, inverse, frame_embeddings)
    counts = np.bincount(inverse, minlength=len(ids))[:, None]
    return ids, (sums / counts).astype(np.float32)


def pool_video(segment_embeddings: np.ndarray, mode: str = "mean") -> np.ndarray:
    """[n_segments, dim] -> [dim].

    * ``mean``: the average segment.
    * ``max``: the element-wise maximum.
    * ``distinct``: a weighted mean, weights softmax(d_i / mean(d)) with d_i the cosine distance
      of segment i from the mean segment: segments unlike the rest (a scene change, the one
      shot of the product) count more than repeated ones. Parameter-free.
    """
    if segment_embeddings.ndim != 2 or len(segment_embeddings) == 0:
        raise ValueError(f"need a non-empty [n_segments, dim] array, got shape {segment_embeddings.shape}")
    if mode == "mean" or len(segment_embeddings) == 1:
        return segment_embeddings.mean(axis=0).astype(np.float32)
    if mode == "max":
        return segment_embeddings.max(axis=0).astype(np.float32)
    if mode != "distinct":
        raise ValueError(f"pooling must be one of {POOLINGS}, got {mode!r}")
    mean = segment_embeddings.mean(axis=0)
    norms = np.linalg.norm(segment_embeddings, axis=1) * max(np.linalg.norm(mean), 1e-12)
    dist = 1.0 - (segment_embeddings @ mean) / np.maximum(norms, 1e-12)
    scaled = dist / max(dist.mean(), 1e-12)
    w = np.exp(scaled - scaled.max())
    return ((w / w.sum()) @ segment_embeddings).astype(np.float32)


def summary_frames(frame_embeddings: np.ndarray, k: int, iterations: int = 20) -> np.ndarray:
    """Positions, in time order, of the ``k`` most representative of a video's sampled frames
    (rows of ``frame_embeddings``, in time order): the medoids of ``k`` clusters of the frames by
    cosine distance (k-medoids; deterministic: the first medoid is the frame nearest all others,
    each next one the frame farthest from the medoids so far, then assign-and-update until
    stable). A clip with two scenes gets medoids in both. Fewer frames than ``k``: all of them.

    >>> summary_frames(np.array([[1.0, 0], [0.9, 0.1], [0, 1.0], [0.1, 0.9]]), 2).tolist()
    [0, 2]
    """
    n = len(frame_embeddings)
    if k <= 0 or n == 0:
        return np.zeros(0, np.int64)
    if n <= k:
        return np.arange(n, dtype=np.int64)
    x = np.asarray(frame_embeddings, np.float64)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    dist = np.clip(1.0 - x @ x.T, 0.0, 2.0)
    medoids = [int(np.argmin(dist.sum(axis=1)))]
    while len(medoids) < k:
        medoids.append(int(np.argmax(dist[:, medoids].min(axis=1))))
    for _ in range(iterations):
        assign = np.argmin(dist[:, medoids], axis=1)
        updated = []
        for c, m in enumerate(medoids):
            members = np.flatnonzero(assign == c)
            updated.append(int(members[np.argmin(dist[np.ix_(members, members)].sum(axis=1))]) if len(members) else m)
        if updated == medoids:
            break
        medoids = updated
    return np.sort(np.asarray(medoids, np.int64))


def summary_strip(frames: np.ndarray, height: int = 96, quality: int = 80) -> bytes:
    """The frames (RGB, [n, h, w, 3]) side by side at ``height`` pixels, as JPEG bytes."""
    import cv2

    tiles = [
        cv2.resize(f, (max(1, round(f.shape[1] * height / f.shape[0])), height), interpolation=cv2.INTER_AREA)
        for f in frames
    ]
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(np.concatenate(tiles, axis=1), cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, quality])  # fmt: skip
    if not ok:
        raise ValueError("JPEG encoding of the summary strip failed")
    return buf.tobytes()
