"""Redis key layout and the compact top-k value encoding, shared by publish and serving.

Pure Python (struct only): the API's cache-hit path imports this and nothing heavier.

Keys (readable in redis-cli)::

    vidrec:{ns}:live                  -> live version id
    vidrec:{ns}:versions              -> sorted set: published versions scored by publish time
    vidrec:{ns}:v:{ver}:meta          -> JSON manifest of a published version
    vidrec:{ns}:v:{ver}:u:{{user}}    -> top-k for a user (encoded list)
    vidrec:{ns}:v:{ver}:sim:{{video}} -> similar videos (encoded list)
    vidrec:{ns}:v:{ver}:popular       -> popular list (encoded list)
    vidrec:{ns}:v:{ver}:popular:c:{category} -> popular within a category (encoded list)
    vidrec:{ns}:v:{ver}:fresh[:c:{category}] -> videos added after training (vidrec fresh; encoded list)
    vidrec:{ns}:v:{ver}:fresh:u:{{user}} -> those that best match a user (mixed into their answers)
    vidrec:{ns}:hist:{{user}}         -> list: video ids the user watched recently (POST /v1/events), newest first
    vidrec:{ns}:events                -> stream: every event posted to the API, for the nightly job

Keys per user or per video carry the id in braces, literally (``{{user}}`` above is e.g.
``{u42}``): a Redis Cluster hash tag. Only the part in braces is hashed, so one user's top-k, fresh
picks and recent-history list share a slot, and the API's cache hit stays one round trip to one
node; a single Redis ignores the braces. Ids cannot hold braces (``recsys.contract.ID_PATTERN``).

Encoded list, version 1 (little-endian)::

    b"VR1" | uint16 n | n x float32 scores | ids joined by "\\n" (UTF-8)

Ids are validated against ``recsys.contract.ID_PATTERN``, which excludes "\\n".
A 100-item list of 6-character ids is about 1.1 kB instead of ~3 kB of JSON.
"""

from __future__ import annotations

import struct
import sys
from array import array
from collections.abc import Sequence

PREFIX = "vidrec"
MAGIC = b"VR1"
_HEADER = struct.Struct("<3sH")
if sys.byteorder != "little" or array("f").itemsize != 4:  # array("f") must match "<f"
    raise ImportError("vidrec's list encoding needs a little-endian platform with 4-byte floats")


def live_key(ns: str) -> str:
    return f"{PREFIX}:{ns}:live"


def version_prefix(ns: str, version: str) -> str:
    return f"{PREFIX}:{ns}:v:{version}"


def tagged(prefix: str, item_id: str) -> str:
    """``prefix{item_id}``: the id as the key's Redis Cluster hash tag."""
    return f"{prefix}{{{item_id}}}"


TAG_SUFFIX = b"}"
"""What follows the id in every tagged key (``tagged``); the bulk writers build keys as
``prefix + id + TAG_SUFFIX`` from the prefixes below."""


def user_prefix(ns: str, version: str) -> str:
    return f"{version_prefix(ns, version)}:u:{{"


def similar_prefix(ns: str, version: str) -> str:
    return f"{version_prefix(ns, version)}:sim:{{"


def user_key(ns: str, version: str, user_id: str) -> str:
    return tagged(f"{version_prefix(ns, version)}:u:", user_id)


def popular_key(ns: str, version: str) -> str:
    return f"{version_prefix(ns, version)}:popular"


def similar_key(ns: str, version: str, video_id: str) -> str:
    return tagged(f"{version_prefix(ns, version)}:sim:", video_id)


def fresh_key(ns: str, version: str, category: str | None = None) -> str:
    """Videos added to ``version`` after training (``vidrec fresh``), best first; per category or all."""
    return f"{version_prefix(ns, version)}:fresh" + (f":c:{category}" if category else "")


def fresh_user_key(ns: str, version: str, user_id: str) -> str:
    """The new videos (``vidrec fresh``) that best match a user, mixed into their answers."""
    return tagged(f"{version_prefix(ns, version)}:fresh:u:", user_id)


def category_popular_key(ns: str, version: str, category: str) -> str:
    return f"{popular_key(ns, version)}:c:{category}"


def versions_key(ns: str) -> str:
    return f"{PREFIX}:{ns}:versions"


def hist_key(ns: str, user_id: str) -> str:
    return tagged(f"{PREFIX}:{ns}:hist:", user_id)


def events_stream_key(ns: str) -> str:
    return f"{PREFIX}:{ns}:events"


def meta_key(ns: str, version: str) -> str:
    return f"{version_prefix(ns, version)}:meta"


def encode_items(ids: Sequence[str], scores: Sequence[float]) -> bytes:
    """Pack ids and scores into one compact value; raises ValueError on bad input."""
    n = len(ids)
    if n != len(scores):
        raise ValueError(f"{n} ids but {len(scores)} scores")
    if n > 0xFFFF:
        raise ValueError(f"at most 65535 items per list, got {n}")
    joined = "\n".join(ids)
    # one newline per separator and no empty id: cheap whole-list checks instead of a Python loop
    if n and (joined.count("\n") != n - 1 or "" in ids):
        bad = next(i for i in ids if not i or "\n" in i)
        raise ValueError(f"id {bad!r} is empty or contains a newline")
    return _HEADER.pack(MAGIC, n) + array("f", scores).tobytes() + joined.encode("utf-8")


def decode_items(blob: bytes, limit: int | None = None) -> list[tuple[str, float]]:
    """Inverse of ``encode_items``: [(id, score), ...] best first; only the first ``limit`` when given."""
    magic, n = _HEADER.unpack_from(blob)
    if magic != MAGIC:
        raise ValueError(f"not a vidrec list (magic {magic!r})")
    off = _HEADER.size
    if not n:
        return []
    text = blob[off + 4 * n :].decode("utf-8")
    if limit is not None and limit < n:
        ids = text.split("\n", limit)[:limit]  # the ids after the limit are not split
        if len(ids) < limit:
            raise ValueError(f"corrupt vidrec list: header says {n} items, found {len(ids)} ids")
        return list(zip(ids, struct.unpack_from(f"<{limit}f", blob, off), strict=True))
    ids = text.split("\n")
    if len(ids) != n:
        raise ValueError(f"corrupt vidrec list: header says {n} items, found {len(ids)} ids")
    return list(zip(ids, struct.unpack_from(f"<{n}f", blob, off), strict=True))
