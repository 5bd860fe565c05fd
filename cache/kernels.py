"""Inner loops compiled with numba for the Redis side of publishing: the list encoding of whole
top-k matrices (``encode_lists``: ``cache.keys.encode_items``' bytes for every row) and RESP
command packing for blocks of keys (``resp_keyed_commands``, ``resp_multikey_command``,
``resp_grouped_commands``) and the Redis Cluster slot of each id (``id_slots``).

This module imports numba (~0.6 s) and compiles each function on first use (cached on disk beside
it): import it inside the functions that need it, never on the API's import path.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(nogil=True, cache=True)
def _digits(x: int) -> int:
    d = 1
    while x >= 10:
        x //= 10
        d += 1
    return d


@numba.njit(nogil=True, cache=True)
def _put(out: np.ndarray, p: int, src: np.ndarray, a: int, b: int) -> int:
    out[p : p + b - a] = src[a:b]
    return p + b - a


@numba.njit(nogil=True, cache=True)
def _put_len(out: np.ndarray, p: int, x: int) -> int:
    """``$<x>\\r\\n`` (a bulk string's length line)."""
    out[p] = 36  # $
    d = _digits(x)
    for t in range(d):
        out[p + d - t] = 48 + x % 10
        x //= 10
    p += d + 1
    out[p] = 13
    out[p + 1] = 10
    return p + 2


@numba.njit(nogil=True, cache=True)
def encode_lists(
    magic: np.ndarray,
    data: np.ndarray,
    starts: np.ndarray,
    index: np.ndarray,
    counts: np.ndarray,
    score_bytes: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """(buffer uint8, offsets int64 [n + 1]): row i's list is ``buffer[offsets[i]:offsets[i + 1]]``,
    laid out as ``keys.encode_items`` lays it out: the 3 ``magic`` bytes, count (uint16 LE), count
    float32 LE scores, then the ids joined by newlines.

    data/starts: the vocabulary's UTF-8 bytes concatenated, id j at ``data[starts[j]:starts[j+1]]``.
    index [n, k]: ids, the first ``counts[i]`` of row i used (the caller checked them).
    score_bytes [n, 4k]: the scores as little-endian float32 bytes.
    """
    n = index.shape[0]
    offsets = np.empty(n + 1, np.int64)
    offsets[0] = 0
    for i in range(n):
        c = counts[i]
        size = 5 + 4 * c + max(c - 1, 0)
        for q in range(c):
            j = index[i, q]
            size += starts[j + 1] - starts[j]
        offsets[i + 1] = offsets[i] + size
    out = np.empty(offsets[n], np.uint8)
    for i in range(n):
        p = offsets[i]
        c = counts[i]
        out[p : p + 3] = magic
        out[p + 3] = c & 0xFF
        out[p + 4] = c >> 8
        p += 5
        out[p : p + 4 * c] = score_bytes[i, : 4 * c]
        p += 4 * c
        for q in range(c):
            if q:
                out[p] = 10  # newline
                p += 1
            j = index[i, q]
            for t in range(starts[j], starts[j + 1]):  # ids are short: a loop beats a slice copy
                out[p] = data[t]
                p += 1
    return out, offsets


@numba.njit(nogil=True, cache=True)
def resp_keyed_commands(
    head: np.ndarray,
    prefix: np.ndarray,
    suffix: np.ndarray,
    id_data: np.ndarray,
    id_starts: np.ndarray,
    first: int,
    vals: np.ndarray,
    val_off: np.ndarray,
    tail: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """RESP commands, one per value: ``head``, the key (``prefix`` + id ``first + i`` + ``suffix``) and value
    ``vals[val_off[i]:val_off[i + 1]]`` as bulk strings, then ``tail`` (already RESP), i.e.
    ``SET key value EX ttl`` with head ``*5\\r\\n$3\\r\\nSET\\r\\n`` and tail the EX argument pair.

    Returns (buffer, ends): command i ends at ``ends[i]``. ids: ``id_data[id_starts[j]:id_starts[j+1]]``.
    """
    n = len(val_off) - 1
    ends = np.empty(n, np.int64)
    total = 0
    for i in range(n):
        klen = len(prefix) + len(suffix) + id_starts[first + i + 1] - id_starts[first + i]
        vlen = val_off[i + 1] - val_off[i]
        total += len(head) + len(tail) + klen + vlen + _digits(klen) + _digits(vlen) + 10
        ends[i] = total
    out = np.empty(total, np.uint8)
    p = 0
    for i in range(n):
        a, b = id_starts[first + i], id_starts[first + i + 1]
        p = _put(out, p, head, 0, len(head))
        p = _put_key(out, p, prefix, suffix, id_data, a, b)
        p = _put_len(out, p, val_off[i + 1] - val_off[i])
        p = _put(out, p, vals, val_off[i], val_off[i + 1])
        out[p] = 13
        out[p + 1] = 10
        p = _put(out, p + 2, tail, 0, len(tail))
    return out, ends


@numba.njit(nogil=True, cache=True)
def resp_multikey_command(
    head: np.ndarray, prefix: np.ndarray, suffix: np.ndarray, id_data: np.ndarray, id_starts: np.ndarray
) -> np.ndarray:
    """One RESP command: ``head`` (the array length line and the command name, already RESP)
    followed by every key ``prefix`` + id + ``suffix`` as a bulk string, e.g. ``EXISTS k1 k2 ...``."""
    n = len(id_starts) - 1
    total = len(head)
    for j in range(n):
        klen = len(prefix) + len(suffix) + id_starts[j + 1] - id_starts[j]
        total += klen + _digits(klen) + 5
    out = np.empty(total, np.uint8)
    p = _put(out, 0, head, 0, len(head))
    for j in range(n):
        p = _put_key(out, p, prefix, suffix, id_data, id_starts[j], id_starts[j + 1])
    return out


@numba.njit(nogil=True, cache=True)
def _put_key(out: np.ndarray, p: int, prefix: np.ndarray, suffix: np.ndarray, ids: np.ndarray, a: int, b: int) -> int:
    p = _put_len(out, p, len(prefix) + len(suffix) + b - a)
    p = _put(out, p, prefix, 0, len(prefix))
    p = _put(out, p, ids, a, b)
    p = _put(out, p, suffix, 0, len(suffix))
    out[p] = 13
    out[p + 1] = 10
    return p + 2


@numba.njit(nogil=True, cache=True)
def resp_grouped_commands(
    name: np.ndarray,
    prefix: np.ndarray,
    suffix: np.ndarray,
    id_data: np.ndarray,
    id_starts: np.ndarray,
    bounds: np.ndarray,
) -> np.ndarray:
    """One RESP command per group of keys: ``name`` (the command name as a bulk string, e.g.
    ``$6\\r\\nEXISTS\\r\\n``) then the keys ``prefix`` + id + ``suffix`` of ids
    ``bounds[g]..bounds[g + 1]``; e.g. one ``EXISTS`` per cluster slot."""
    total = 0
    for g in range(len(bounds) - 1):
        total += 1 + _digits(bounds[g + 1] - bounds[g] + 1) + 2 + len(name)
        for j in range(bounds[g], bounds[g + 1]):
            klen = len(prefix) + len(suffix) + id_starts[j + 1] - id_starts[j]
            total += klen + _digits(klen) + 5
    out = np.empty(total, np.uint8)
    p = 0
    for g in range(len(bounds) - 1):
        start = p
        p = _put_len(out, p, bounds[g + 1] - bounds[g] + 1)
        out[start] = 42  # "*": an array of that many bulk strings, not "$"
        p = _put(out, p, name, 0, len(name))
        for j in range(bounds[g], bounds[g + 1]):
            p = _put_key(out, p, prefix, suffix, id_data, id_starts[j], id_starts[j + 1])
    return out


@numba.njit(nogil=True, cache=True)
def _crc16_table() -> np.ndarray:
    table = np.empty(256, np.int64)
    for i in range(256):
        crc = i << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
        table[i] = crc & 0xFFFF
    return table


@numba.njit(nogil=True, cache=True)
def id_slots(id_data: np.ndarray, id_starts: np.ndarray) -> np.ndarray:
    """[n] int32 Redis Cluster hash slot of each id used as a key's hash tag: CRC16 (XMODEM) of
    the id's bytes mod 16384 (``cache.cluster.key_slot`` for one key)."""
    table = _crc16_table()
    n = len(id_starts) - 1
    out = np.empty(n, np.int32)
    for j in range(n):
        crc = 0
        for t in range(id_starts[j], id_starts[j + 1]):
            crc = ((crc << 8) & 0xFFFF) ^ table[((crc >> 8) ^ id_data[t]) & 0xFF]
        out[j] = crc & 16383
    return out
