"""``cache.keys``' list encoding for whole top-k matrices at once, for publishing.

``encode_matrix(vocab, index, scores)`` gives the same bytes as ``keys.encode_items`` row by
row, written into one flat buffer by a compiled loop (``cache.kernels.encode_lists``) instead of
joining Python strings per row: 1.5-3 us per 100-item list instead of ~24 us (and ~5.4 us for
the earlier vectorised numpy layout), measured on 16k-row blocks of random ids.
The serving side never imports this (it needs numpy); it decodes with ``keys.decode_items``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from cache import keys
from recsys.prefetch import prefetched


def concat_bytes(parts: Sequence[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """(data uint8, starts int64 [n + 1]): part j is ``data[starts[j]:starts[j + 1]]``."""
    starts = np.zeros(len(parts) + 1, np.int64)
    np.cumsum(np.fromiter(map(len, parts), np.int64, len(parts)), out=starts[1:])
    return np.frombuffer(b"".join(parts), np.uint8), starts


class VocabBytes:
    """Item ids as one UTF-8 byte array: id j is ``data[starts[j]:starts[j + 1]]``."""

    def __init__(self, vocab: Sequence[str]) -> None:
        encoded = [v.encode() for v in vocab]
        for v in encoded:
            if not v or b"\n" in v:
                raise ValueError(f"id {v!r} is empty or contains a newline")
        self.data, self.starts = concat_bytes(encoded)

    def __len__(self) -> int:
        return len(self.starts) - 1


def encode_matrix(vocab: VocabBytes, index: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(buffer uint8, offsets int64 [n + 1]): row i's encoded list is ``buffer[offsets[i]:offsets[i+1]]``.

    index: [n, k] ints into ``vocab``, best first; -1 marks the padded tail of a short row (as
    ``topk_with_exclusions`` returns it; -1 only after every valid entry). scores: [n, k] float32.
    """
    from cache.kernels import encode_lists

    index = np.ascontiguousarray(index, dtype=np.int64)
    n, k = index.shape
    if scores.shape != index.shape:
        raise ValueError(f"index {index.shape} and scores {scores.shape} differ")
    if k > 0xFFFF:
        raise ValueError(f"at most 65535 items per list, got {k}")
    valid = index >= 0
    counts = valid.sum(axis=1)
    if not np.array_equal(valid, np.arange(k)[None, :] < counts[:, None]):
        raise ValueError("-1 entries must only pad the tail of a row")
    if index.max(initial=-1) >= len(vocab):
        raise ValueError(f"index {int(index.max())} is outside the vocabulary of {len(vocab)} ids")
    score_bytes = np.ascontiguousarray(scores, dtype="<f4").view(np.uint8).reshape(n, 4 * k)
    magic = np.frombuffer(keys.MAGIC, np.uint8)
    return encode_lists(magic, vocab.data, vocab.starts, index, counts, score_bytes)


def encode_row_blocks(
    vocab: VocabBytes, index: np.ndarray, scores: np.ndarray, block_bytes: int = 16 << 20
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``encode_matrix`` a block of rows at a time (about ``block_bytes`` each): (buffer, offsets)
    per block, offsets relative to the block's buffer.

    The next block is encoded on a second thread while the caller consumes this one (the
    compiled encoder releases the GIL): publishing overlaps encoding with writing."""
    mean_id = len(vocab.data) / max(1, len(vocab))
    rows = max(1, int(block_bytes // (5 + index.shape[1] * (5 + mean_id))))
    return prefetched(
        encode_matrix(vocab, index[s : s + rows], scores[s : s + rows]) for s in range(0, len(index), rows)
    )


def warm_up() -> None:
    """Compile (or load from the disk cache) every ``cache.kernels`` loop now, on tiny inputs:
    benchmarks call this so that the first timed call does not include ~8 s of compilation."""
    from cache.kernels import (
        id_slots,
        resp_grouped_commands,
        resp_keyed_commands,
        resp_multikey_command,
    )

    vocab = VocabBytes(["a", "bc"])
    buf, off = encode_matrix(vocab, np.array([[1, 0]]), np.ones((1, 2), np.float32))
    byte = np.frombuffer(b"x", np.uint8)
    resp_keyed_commands(byte, byte, byte, vocab.data, vocab.starts, 0, buf, off, byte)
    resp_multikey_command(byte, byte, byte, vocab.data, vocab.starts)
    id_slots(vocab.data, vocab.starts)
    resp_grouped_commands(byte, byte, byte, vocab.data, vocab.starts, np.array([0, 1, 2]))
