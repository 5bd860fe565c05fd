"""The ONNX text encoder (what the API embeds search queries with) gives the sentence-transformers
vectors: cosine > 0.999 on captions, comments, a query, an empty string, a long text, non-English."""

from __future__ import annotations

import numpy as np
import pytest

TEXTS = [
    "Cooking pasta at home | easy dinner for two | food",
    "mountain biking",
    "Learn guitar chords: a beginner lesson",
    "",
    "so tasty!!! 🍝",
    "Wie man Brot backt",
    "a long comment " * 200,
]


@pytest.fixture(scope="module")
def onnx_dir(tmp_path_factory):
    from recsys.text_onnx import export_text_onnx

    return export_text_onnx(out=tmp_path_factory.mktemp("text-onnx") / "minilm")


def test_onnx_text_encoder_matches_sentence_transformers(onnx_dir):
    import subprocess
    import sys

    from recsys.encoders import SentenceTransformerEncoder
    from recsys.text_onnx import OnnxTextEncoder

    reference = SentenceTransformerEncoder().encode(TEXTS)
    onnx = OnnxTextEncoder(onnx_dir, batch_size=3)  # batches of unequal padding
    got = onnx.encode(TEXTS)
    assert got.shape == reference.shape == (len(TEXTS), 384)
    cosine = (got * reference).sum(axis=1)
    assert cosine.min() > 0.999, cosine
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    assert onnx.encode([]).shape == (0, 384)
    assert (onnx.name, onnx.dim) == ("all-minilm-l6-v2", 384)
    # the export is done once: a second call returns the folder as it is
    from recsys.text_onnx import export_text_onnx

    mtime = (onnx_dir / "model.onnx").stat().st_mtime_ns
    assert export_text_onnx(out=onnx_dir) == onnx_dir and (onnx_dir / "model.onnx").stat().st_mtime_ns == mtime
    # and it runs where neither PyTorch nor TensorFlow is imported
    code = (
        "import sys; from recsys.text_onnx import OnnxTextEncoder; "
        f"e = OnnxTextEncoder({str(onnx_dir)!r}); v = e.encode(['mountain biking']); "
        "bad = [m for m in ('torch', 'tensorflow', 'transformers') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad or v.shape != (1, 384) else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]


def test_a_missing_export_is_a_clear_error(tmp_path):
    from recsys.text_onnx import OnnxTextEncoder

    with pytest.raises(FileNotFoundError, match="no ONNX text encoder"):
        OnnxTextEncoder(tmp_path / "nothing")


class _Counting:
    """Stands in for the ONNX encoder: the cache's bookkeeping is what is under test here."""

    dim = 3

    def __init__(self) -> None:
        self.seen: list[str] = []

    def encode(self, texts: list[str]) -> np.ndarray:
        self.seen += texts
        return np.asarray([[len(t), t.count("a"), 1.0] for t in texts], np.float32).reshape(-1, 3)


def test_query_cache_encodes_each_distinct_query_once_and_evicts_the_least_recent():
    from recsys.text_onnx import QueryCache

    inner = _Counting()
    cache = QueryCache(inner, size=2)
    first = cache.encode(["cat", " cat ", "banana"])
    assert inner.seen == ["cat", "banana"]  # stripped, de-duplicated, one batch
    np.testing.assert_array_equal(first, inner.encode(["cat", "cat", "banana"]))
    inner.seen.clear()
    cache.encode(["cat"])  # a hit: "cat" becomes the most recent
    cache.encode(["dog"])  # evicts "banana", the least recently used
    cache.encode(["banana", "cat"])
    assert inner.seen == ["dog", "banana"]
    assert (cache.hits, cache.misses) == (3, 4)
    assert cache.encode([]).shape == (0, 3)


def test_query_cache_of_size_zero_keeps_nothing():
    from recsys.text_onnx import QueryCache

    inner = _Counting()
    cache = QueryCache(inner, size=0)
    cache.encode(["a"])
    cache.encode(["a"])
    assert inner.seen == ["a", "a"]
