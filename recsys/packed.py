"""``recsys.keys``' list encoding for whole top-k matrices at once (numpy), for publishing.

``encode_matrix(vocab, index, scores)`` gives the same bytes as ``keys.encode_items`` row by
row, but builds every row in one flat buffer with vectorised gathers instead of joining Python
strings per row: 2.5-6 us per 100-item list (ids of one length / of varying length) instead of
~24 us, measured on 100k lists by hand (``benchmarks/publish.py`` times the whole publish).
The serving side never imports this (it needs numpy); it decodes with ``keys.decode_items``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from recsys import keys


class VocabBytes:
    """Item ids as a padded byte matrix: row j holds id j's UTF-8 bytes, then "\\n", then zeros,
    and the mask of those id-and-newline bytes."""

    def __init__(self, vocab: Sequence[str]) -> None:
        encoded = [v.encode() for v in vocab]
        for v in encoded:
            if not v or b"\n" in v:
                raise ValueError(f"id {v!r} is empty or contains a newline")
        self.lengths = np.fromiter((len(v) for v in encoded), np.int64, len(encoded))
        self.width = int(self.lengths.max(initial=0)) + 1
        self.fixed = bool(len(encoded)) and int(self.lengths.min()) + 1 == self.width  # every id the same length
        self.padded = np.zeros((len(encoded), self.width), np.uint8)
        flat = np.frombuffer(b"".join(encoded), np.uint8)
        rows = np.repeat(np.arange(len(encoded)), self.lengths)
        cols = np.arange(len(flat)) - np.repeat(np.cumsum(self.lengths) - self.lengths, self.lengths)
        self.padded[rows, cols] = flat
        self.padded[np.arange(len(encoded)), self.lengths] = ord("\n")
        self.keep = np.arange(self.width)[None, :] <= self.lengths[:, None]

    def __len__(self) -> int:
        return len(self.lengths)


def encode_matrix(vocab: VocabBytes, index: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(buffer uint8, offsets int64 [n + 1]): row i's encoded list is ``buffer[offsets[i]:offsets[i+1]]``.

    index: [n, k] ints into ``vocab``, best first; -1 marks the padded tail of a short row (as
    ``topk_with_exclusions`` returns it; -1 only after every valid entry). scores: [n, k] float32.

    Each row is laid out in a fixed-size block (header, k scores, k padded ids + newlines). Where
    every row is full and every id has the same length, the block is the answer but for the
    row's last newline; otherwise one boolean selection drops the padding (unused scores, each
    id's trailing zeros, the row's last newline).
    """
    index = np.asarray(index)
    n, k = index.shape
    if scores.shape != index.shape:
        raise ValueError(f"index {index.shape} and scores {scores.shape} differ")
    if k > 0xFFFF:
        raise ValueError(f"at most 65535 items per list, got {k}")
    valid = index >= 0
    counts = valid.sum(axis=1)
    full = bool((counts == k).all())
    if not full and not np.array_equal(valid, np.arange(k)[None, :] < counts[:, None]):
        raise ValueError("-1 entries must only pad the tail of a row")
    if index.max(initial=-1) >= len(vocab):
        raise ValueError(f"index {int(index.max())} is outside the vocabulary of {len(vocab)} ids")
    safe = index if full else np.where(valid, index, 0)
    width, head_end = vocab.width, 5 + 4 * k

    block = np.empty((n, head_end + k * width), np.uint8)
    block[:, :3] = np.frombuffer(keys.MAGIC, np.uint8)
    block[:, 3] = counts & 0xFF
    block[:, 4] = counts >> 8
    block[:, 5:head_end] = np.ascontiguousarray(scores, dtype="<f4").view(np.uint8).reshape(n, 4 * k)
    block[:, head_end:] = vocab.padded[safe].reshape(n, k * width)
    if full and vocab.fixed:
        row = block.shape[1]
        offsets = np.arange(n + 1, dtype=np.int64) * row
        return block.reshape(-1), offsets  # each row's last byte (a newline) is left out by the caller

    keep = np.empty(block.shape, bool)
    keep[:, :5] = True
    keep[:, 5:head_end] = np.arange(4 * k)[None, :] < 4 * counts[:, None]
    ids_keep = keep[:, head_end:].reshape(n, k, width)
    ids_keep[:] = vocab.keep[safe]
    if not full:
        ids_keep[~valid] = False
    last = np.maximum(counts - 1, 0)
    rows = np.flatnonzero(counts)
    ids_keep[rows, last[rows], vocab.lengths[safe[rows, last[rows]]]] = False  # the row's last newline
    offsets = np.zeros(n + 1, np.int64)
    np.cumsum(keep.sum(axis=1), out=offsets[1:])
    return block[keep], offsets


def encode_row_blocks(
    vocab: VocabBytes, index: np.ndarray, scores: np.ndarray, block_bytes: int = 16 << 20
) -> Iterator[list[bytes]]:
    """Each row's encoded list as bytes, a block of rows at a time (``block_bytes`` of layout each).

    The next block is encoded on a second thread while the caller consumes this one (numpy's
    copies and selections release the GIL): publishing overlaps encoding with writing."""
    from concurrent.futures import ThreadPoolExecutor

    row_bytes = 5 + index.shape[1] * (4 + vocab.width)
    rows_per_block = max(1, block_bytes // row_bytes)

    def encode(s: int) -> list[bytes]:
        part = index[s : s + rows_per_block]
        buf, off = encode_matrix(vocab, part, scores[s : s + rows_per_block])
        raw = buf.tobytes()
        bounds = off.tolist()
        trim = 1 if vocab.fixed and part.shape[1] and bool((part >= 0).all()) else 0  # see encode_matrix
        return [raw[a : b - trim] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]

    starts = range(0, len(index), rows_per_block)
    with ThreadPoolExecutor(1, thread_name_prefix="encode") as pool:
        ahead = pool.submit(encode, starts[0]) if starts else None
        for nxt in [*starts[1:], None]:
            block = ahead.result()  # type: ignore[union-attr]
            ahead = pool.submit(encode, nxt) if nxt is not None else None
            yield block
