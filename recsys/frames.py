"""Frame sampling plans and pooling: pure functions on counts and arrays (no decoding here)."""

from __future__ import annotations

import numpy as np


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


def mean_pool(embeddings: np.ndarray) -> np.ndarray:
    """[n_frames, dim] -> [dim]; the mean of the frame embeddings."""
    if embeddings.ndim != 2 or len(embeddings) == 0:
        raise ValueError(f"need a non-empty [n_frames, dim] array, got shape {embeddings.shape}")
    return embeddings.mean(axis=0).astype(np.float32)
