"""publish: every active user's top-k, similar videos and popular lists to Redis, under a new
version, atomically.

1. Score: user vectors (user tower over each user's last watched videos, all known events) x
   item matrix, exact, in blocks; each user's watched videos excluded. Similar videos: item x
   item on the same embeddings, the video itself excluded. Popular: most watched in the
   window, overall and per category.
2. Write: versioned keys, SET with a TTL of 2-3x the refresh period, 1,000 per batch, batches
   pipelined; values encoded from the top-k index matrices and packed into RESP by compiled
   loops (``recsys.packed``, ``recsys.kernels``) on a thread ahead of the socket. A failed night
   leaves the previous version serving until it is replaced.
3. Verify: every user key exists and a sample reads back byte-identical.
4. Flip: one SET of ``vidrec:{ns}:live``. Readers see the old version or the new one, never a mix.
5. Clean up: versions other than the live one and the one before it (the rollback target) that
   were published more than ``grace_seconds`` ago are removed with UNLINK (their TTL would
   remove them anyway; this frees the memory sooner).

Republishing the same version writes the same keys with the same values (idempotent).
"""

from __future__ import annotations

import collections
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines import frame_features, ingest, train
from pipelines.config import PipelineConfig, run_date_end_epoch_s, write_json
from recsys import keys
from recsys.keys import pack
from recsys.metrics import topk_with_exclusions
from recsys.model import last_history
from recsys.packed import VocabBytes, concat_bytes, encode_row_blocks
from recsys.prefetch import prefetched

log = logging.getLogger(__name__)

WRITE_CHUNK = 1000
PIPELINE_WINDOW = 2  # batches sent ahead of the replies read
VERIFY_SAMPLE = 50
_OK = b"+OK\r\n"
Buffer = bytes | memoryview | np.ndarray  # what socket.sendall takes


class PublishError(RuntimeError):
    """The new version could not be written or verified; the live pointer was not moved."""


@dataclass(frozen=True)
class TopK:
    """Ranked lists as Python lists: ``item_ids[i]`` (best first) and their scores for ``user_ids[i]``."""

    user_ids: list[str]
    item_ids: list[list[str]]
    scores: list[list[float]]

    def encoded_blocks(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """One block: (buffer, offsets), list i at ``buffer[offsets[i]:offsets[i + 1]]``."""
        yield concat_bytes([keys.encode_items(i, s) for i, s in zip(self.item_ids, self.scores, strict=True)])


@dataclass(frozen=True)
class TopKMatrix:
    """The same lists as top-k returns them: ``index`` [n, k] into ``vocab`` (-1 pads a short row's
    tail) and ``scores`` [n, k]; encoded for Redis a block at a time, without per-row Python lists."""

    user_ids: list[str]
    vocab: VocabBytes
    index: np.ndarray
    scores: np.ndarray

    def encoded_blocks(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        return encode_row_blocks(self.vocab, self.index, self.scores)


def batch_topk(
    queries: np.ndarray, items: np.ndarray, k: int, exclude: list[np.ndarray], ann_min_items: int
) -> tuple[np.ndarray, np.ndarray]:
    """Exact blocked top-k, or the faiss IVF index once the catalogue has ``ann_min_items`` videos."""
    if len(items) >= ann_min_items:
        from recsys.ann import IVFIndex

        log.info("catalogue of %d videos >= %d: approximate top-k (faiss IVF)", len(items), ann_min_items)
        return IVFIndex(items).search(queries, k, exclude)
    return topk_with_exclusions(queries, items, k, exclude)


def score_users(
    model: train.ExportedModel,
    events: pd.DataFrame,
    k: int,
    unavailable: frozenset[str] = frozenset(),
    ann_min_items: int = 250_000,
) -> TopKMatrix:
    """Top-k unwatched videos for every user in the model's vocabulary who has an event.

    ``unavailable``: videos never to recommend (their media file was quarantined as unplayable).
    """
    uidx = {u: i for i, u in enumerate(model.users)}
    iidx = {v: i for i, v in enumerate(model.items)}
    known = events[events["user_id"].isin(uidx) & events["video_id"].isin(iidx)]
    u = known["user_id"].map(uidx).to_numpy()
    i = known["video_id"].map(iidx).to_numpy()
    active = np.unique(u)
    hist, weight = last_history(
        u,
        i,
        known["ts"].to_numpy(),
        len(model.users),
        model.config.max_history,
        len(model.items),
        train.completion(known),
    )
    watched = known.assign(u=u, i=i).groupby("u")["i"].agg(lambda s: np.unique(s.to_numpy()))
    vectors = model.user_tower(hist[active], active.astype(np.int32), weight[active])
    blocked = np.array(sorted(iidx[v] for v in unavailable if v in iidx), dtype=np.int64)
    exclude = [np.union1d(watched[a], blocked) for a in active]
    # Freshness as of the latest event known: the lists serve from now until the next publish.
    items = model.item_vectors_at(float(events["ts"].max()) if len(events) else None)
    idx, scores = batch_topk(vectors, items, k, exclude, ann_min_items)
    return TopKMatrix([model.users[a] for a in active], VocabBytes(model.items), idx, scores)


def similar_items(
    model: train.ExportedModel, k: int, unavailable: frozenset[str] = frozenset(), ann_min_items: int = 250_000
) -> TopKMatrix:
    """For every video in the model, the ``k`` nearest other videos by item-embedding dot product
    (the item tower's unit vectors: cosine similarity)."""
    iidx = {v: i for i, v in enumerate(model.items)}
    blocked = np.array(sorted(iidx[v] for v in unavailable if v in iidx), dtype=np.int64)
    exclude = [np.union1d([i], blocked) for i in range(len(model.items))]
    vectors = model.layout.similarity_vectors(model.item_vectors)
    idx, scores = batch_topk(vectors, vectors, k, exclude, ann_min_items)
    return TopKMatrix(list(model.items), VocabBytes(model.items), idx, scores)


def category_popular(
    events: pd.DataFrame, videos: pd.DataFrame, end_epoch_s: int, window_days: int, k: int
) -> dict[str, tuple[list[str], list[float]]]:
    """``popular_items`` within each category that has events (categories are the videos' own)."""
    cat = videos.set_index("video_id")["category"].fillna("") if "category" in videos else pd.Series(dtype=str)
    labelled = events.assign(category=events["video_id"].map(cat).fillna(""))
    return {
        str(c): popular_items(group, end_epoch_s, window_days, k)
        for c, group in labelled.groupby("category")
        if c and keys_safe(str(c))
    }


def keys_safe(part: str) -> bool:
    """A category can be part of a key when it has no control characters and is not too long."""
    return 0 < len(part.encode()) <= 200 and all(ch.isprintable() for ch in part)


def popular_items(events: pd.DataFrame, end_epoch_s: int, window_days: int, k: int) -> tuple[list[str], list[float]]:
    """Most-watched videos in the ``window_days`` before ``end_epoch_s``; score = share of views."""
    recent = events[events["ts"] >= end_epoch_s - window_days * 86400]
    if recent.empty:  # a quiet window: fall back to all history rather than an empty list
        recent = events
    counts = (
        recent.groupby("video_id")
        .size()
        .rename("n")
        .reset_index()
        .sort_values(["n", "video_id"], ascending=[False, True])
        .head(k)
    )
    return counts["video_id"].tolist(), (counts["n"] / len(recent)).astype(float).tolist()


def publish_version(
    client,
    ns: str,
    version: str,
    topk: TopK | TopKMatrix,
    popular: tuple[list[str], list[float]],
    ttl_seconds: int,
    similar: TopK | TopKMatrix | None = None,
    by_category: dict[str, tuple[list[str], list[float]]] | None = None,
    grace_seconds: int = 3600,
    now: float | None = None,
) -> dict[str, object]:
    """Write, verify, flip, clean up. Raises PublishError (live pointer untouched) if verification fails."""
    import redis

    from recsys.kernels import resp_keyed_commands, resp_multikey_command

    lists = [(keys.user_key(ns, version, "").encode(), topk)] + (
        [(keys.similar_key(ns, version, "").encode(), similar)] if similar else []
    )
    ids = [concat_bytes([u.encode() for u in ranked.user_ids]) for _, ranked in lists]
    singles = [(keys.popular_key(ns, version).encode(), popular)] + [
        (keys.category_popular_key(ns, version, c).encode(), lst) for c, lst in (by_category or {}).items()
    ]
    n_keys = sum(len(t.user_ids) for _, t in lists) + len(singles)
    sample_at = sorted(np.random.default_rng(0).choice(n_keys, min(VERIFY_SAMPLE, n_keys), replace=False).tolist())
    sample: list[tuple[bytes, bytes]] = []  # (key, value) read back after the write
    sizes = {"bytes": 0, "user_bytes": 0}
    set_head = np.frombuffer(b"*5\r\n$3\r\nSET\r\n", np.uint8)
    ex_tail = np.frombuffer(pack([b"EX", ttl_seconds])[4:], np.uint8)  # the EX pair without the array line

    def batches() -> Iterator[tuple[memoryview | bytes, int]]:
        """``SET key value EX ttl`` commands as RESP, ``WRITE_CHUNK`` per batch, built from each
        encoded block by a compiled loop (``recsys.kernels``; no per-key Python objects). Blocks are
        encoded as they are written: only a sample of values stays in memory."""
        first = 0  # index of the block's first key among all keys
        for (prefix, ranked), (id_data, id_starts) in zip(lists, ids, strict=True):
            p, start = np.frombuffer(prefix, np.uint8), 0
            for buf, off in ranked.encoded_blocks():
                n = len(off) - 1
                if start + n > len(ranked.user_ids):  # checked here: the kernel does not check bounds
                    raise PublishError(f"more lists encoded than the {len(ranked.user_ids)} ids")
                cmds, ends = resp_keyed_commands(set_head, p, id_data, id_starts, start, buf, off, ex_tail)
                block_bytes = int(off[-1] - off[0])
                sizes["bytes"] += block_bytes
                if ranked is topk:
                    sizes["user_bytes"] += block_bytes
                for j in sample_at:
                    if first <= j < first + n:
                        i = j - first
                        uid = id_data[id_starts[start + i] : id_starts[start + i + 1]].tobytes()
                        sample.append((prefix + uid, buf[off[i] : off[i + 1]].tobytes()))
                view = memoryview(cmds)
                for s in range(0, n, WRITE_CHUNK):
                    e = min(s + WRITE_CHUNK, n)
                    yield view[int(ends[s - 1]) if s else 0 : int(ends[e - 1])], e - s
                start, first = start + n, first + n
            if start != len(ranked.user_ids):
                raise PublishError(f"{start} lists encoded for {len(ranked.user_ids)} ids")
        single_keys = [key for key, _ in singles]
        values = [keys.encode_items(*lst) for _, lst in singles]
        sizes["bytes"] += sum(map(len, values))
        sample.extend((single_keys[j - first], values[j - first]) for j in sample_at if j >= first)
        cmds = [pack([b"SET", key, v, b"EX", ttl_seconds]) for key, v in zip(single_keys, values, strict=True)]
        yield b"".join(cmds), len(cmds)

    def exists_batches() -> Iterator[tuple[bytes | np.ndarray, int]]:
        for (prefix, _), (id_data, id_starts) in zip(lists, ids, strict=True):
            for s in range(0, len(id_starts) - 1, WRITE_CHUNK):
                part = id_starts[s : s + WRITE_CHUNK + 1]
                head = np.frombuffer(b"*%d\r\n$6\r\nEXISTS\r\n" % len(part), np.uint8)
                yield resp_multikey_command(head, np.frombuffer(prefix, np.uint8), id_data, part), 1
        yield pack([b"EXISTS", *(key for key, _ in singles)]), 1

    try:
        ahead = prefetched(batches(), depth=4)  # packed on a thread, ahead of the socket
        try:
            write_batches(client, ahead)
        finally:
            ahead.close()  # on failure: stops the packing thread now, not when garbage is collected
        present = count_existing(client, exists_batches())
        if present != n_keys:
            raise PublishError(f"verification failed: {present} of {n_keys} keys present after write")
        for (key, value), got in zip(sample, client.mget([k for k, _ in sample]), strict=True):
            if got != value:
                raise PublishError(f"verification failed: {key.decode()} reads back different bytes")
        n_users = len(topk.user_ids)
        meta = {
            "version": version,
            "users": len(topk.user_ids),
            "similar": len(similar.user_ids) if similar is not None else 0,
            "categories": len(by_category or {}),
            "popular": len(popular[0]),
            "keys": n_keys,
            "bytes": sizes["bytes"],
            "bytes_per_user_list": round(sizes["user_bytes"] / n_users, 1) if n_users else 0.0,
        }
        client.set(keys.meta_key(ns, version), json.dumps(meta), ex=ttl_seconds)
        previous = client.get(keys.live_key(ns))
        now = time.time() if now is None else now
        # Registered before the flip, so a version that ever went live is always known to cleanup.
        client.zadd(keys.versions_key(ns), {version: now})
        client.set(keys.live_key(ns), version)  # the flip: one command
        prev = previous.decode() if previous else None
        # Keep the live version and a rollback target (the one it replaced, or else the newest other).
        newest_other = [v.decode() for v in client.zrevrange(keys.versions_key(ns), 0, 1) if v.decode() != version]
        keep = {version, prev, *newest_other[:1]} - {None}
        removed = remove_old_versions(client, ns, keep=keep, older_than=now - grace_seconds)
    except redis.RedisError as exc:
        raise PublishError(f"Redis error while publishing {version}: {exc}") from exc
    meta["previous_version"] = prev
    meta["removed_versions"] = removed
    return meta


def pipelined(  # type: ignore[no-untyped-def]
    client, batches: Iterator[tuple[Buffer, int]], window: int = PIPELINE_WINDOW, all_ok: bool = False
) -> Iterator[list[object]]:
    """Send each batch (RESP bytes holding ``n`` commands) on one pooled connection, up to ``window``
    batches ahead of the replies read, and yield each batch's ``n`` replies in order: Redis works on
    one batch while the next is packed and sent. An error reply is raised as ResponseError.

    ``all_ok``: every command answers ``+OK`` (SET); a batch's replies are then checked as raw bytes
    (one comparison per batch) and yielded as an empty list; anything else is parsed and raised.

    The connection comes from redis-py's pool (so AUTH, database, TLS and timeouts are redis-py's);
    its socket is then read with a hiredis reader of our own: ~0.2 us per reply instead of ~1.8 us
    through ``read_response``, which was a fifth of the publish time."""
    import hiredis
    import redis

    conn = client.connection_pool.get_connection()
    sock = conn._sock  # connected by get_connection(); only this function uses it until released
    reader = hiredis.Reader()
    in_flight: collections.deque[int] = collections.deque()
    buf = bytearray(1 << 20)
    raw = bytearray()  # received, not yet consumed (all_ok)

    def receive() -> int:
        n = sock.recv_into(buf)
        if n == 0:
            raise redis.ConnectionError("Redis closed the connection during publish")
        return n

    def read_one() -> list[object]:
        replies: list[object] = []
        want = in_flight.popleft()
        if all_ok:
            while len(raw) < 5 * want:
                raw.extend(memoryview(buf)[: receive()])
            if raw.startswith(_OK * want):
                del raw[: 5 * want]
                return replies
            reader.feed(bytes(raw))  # something else came back: parse it to say what
            raw.clear()
        while len(replies) < want:
            reply = reader.gets()
            if reply is False:
                reader.feed(buf, 0, receive())
                continue
            if isinstance(reply, hiredis.ReplyError):
                raise redis.ResponseError(str(reply))
            if all_ok and reply not in (b"OK", "OK"):
                raise redis.ResponseError(f"expected OK, got {reply!r}")
            replies.append(reply)
        if all_ok:
            raise redis.ResponseError("expected OK replies, got a different byte stream")
        return replies

    try:
        for payload, n in batches:
            sock.sendall(payload)
            in_flight.append(n)
            if len(in_flight) > window:
                yield read_one()
        while in_flight:
            yield read_one()
    except OSError as exc:  # socket timeout or reset, as redis-py would report it
        conn.disconnect()
        raise redis.ConnectionError(f"publish connection failed: {exc!r}") from exc
    except BaseException:
        conn.disconnect()  # unread replies must not go back to the pool
        raise
    finally:
        client.connection_pool.release(conn)


def write_batches(client, batches: Iterator[tuple[Buffer, int]]) -> None:  # type: ignore[no-untyped-def]
    """Send batches of RESP commands that each answer +OK (SET), pipelined; raise on anything else.

    Commands are packed by the caller (``recsys.kernels.resp_keyed_commands`` for whole blocks):
    redis-py's per-argument packing cost more than Redis's own work (25k keys/s against ~400k/s
    for redis-benchmark -P 1000 on this project's benchmark machine), and formatting each SET in
    Python was still a fifth of the publish time."""
    for _ in pipelined(client, batches, all_ok=True):
        pass


def count_existing(client, batches: Iterator[tuple[Buffer, int]]) -> int:  # type: ignore[no-untyped-def]
    """The sum of the replies of a run of pipelined EXISTS commands (one command per batch)."""
    return sum(int(r[0]) for r in pipelined(client, batches))  # type: ignore[call-overload]


def unlink_matching(client, pattern: str, batch: int = 1000) -> int:  # type: ignore[no-untyped-def]
    """UNLINK every key matching ``pattern``, found with SCAN (never KEYS), ``batch`` keys per call."""
    removed, pending = 0, []
    for key in client.scan_iter(match=pattern, count=batch):
        pending.append(key)
        if len(pending) >= batch:
            removed += client.unlink(*pending)
            pending = []
    if pending:
        removed += client.unlink(*pending)
    return removed


def remove_old_versions(client, ns: str, keep: set[str], older_than: float, batch: int = 1000) -> list[str]:
    """UNLINK every key of registered versions published before ``older_than``, except ``keep``.

    Keys are found with SCAN (never KEYS) and unlinked in batches; Redis frees them in the background.
    """
    removed = []
    for raw in client.zrangebyscore(keys.versions_key(ns), "-inf", older_than):
        version = raw.decode()
        if version in keep:
            continue
        unlink_matching(client, f"{keys.version_prefix(ns, version)}:*", batch)
        client.zrem(keys.versions_key(ns), version)
        removed.append(version)
    return removed


def gate_decision(
    new_report: dict | None,  # type: ignore[type-arg]
    live_report: dict | None,  # type: ignore[type-arg]
    metric: str,
    tolerance: float,
) -> tuple[bool, str]:
    """(publish?, why): a model worse than the live one on ``metric`` by more than ``tolerance``
    (same protocol) is held back; without comparable numbers the new model goes out."""
    if new_report is None:
        return True, "no evaluation report for the new model: published ungated"
    if live_report is None:
        return True, "no live model with a report to compare against"
    if live_report.get("protocol") != new_report.get("protocol"):
        return True, f"live model was evaluated under {live_report.get('protocol')}, not {new_report.get('protocol')}"
    new = new_report["metrics"]["two_tower"][metric]
    live = live_report["metrics"]["two_tower"][metric]
    if new < live - tolerance:
        return False, f"{metric} {new:.4f} is below the live model's {live:.4f} (tolerance {tolerance}); not published"
    return True, f"{metric} {new:.4f} vs live {live:.4f}"


def _live_report(cfg: PipelineConfig, client) -> tuple[str | None, dict | None]:  # type: ignore[type-arg]
    raw = client.get(keys.live_key(cfg.namespace))
    live = raw.decode() if raw else None
    path = cfg.model_dir(live) / "metrics.json" if live else None
    return live, json.loads(path.read_text()) if path is not None and path.exists() else None


def publish_model(
    cfg: PipelineConfig, run_date: str, model: train.ExportedModel, gate: bool = True
) -> dict[str, object]:
    """Score and publish one exported model with the run date's events; gated on its metrics."""
    t0 = time.perf_counter()
    client = connect(cfg)
    try:
        live, live_report = _live_report(cfg, client)
        new_report = (
            json.loads((model.path / "metrics.json").read_text()) if (model.path / "metrics.json").exists() else None
        )
        ok, why = (
            (True, "gate off")
            if not gate or live == model.version
            else gate_decision(new_report, live_report, cfg.gate_metric, cfg.gate_tolerance)
        )
        if not ok:
            log.warning("publish %s held back: %s", model.version, why)
            return {"version": model.version, "published": False, "reason": why, "live_version": live}
        source = ingest.load(cfg, run_date)
        events = source.events
        unplayable = frozenset(frame_features.load_quarantine(cfg, run_date)["video_id"])
        topk = score_users(model, events, cfg.topk, unplayable, cfg.ann_min_items)
        similar = similar_items(model, cfg.similar_k, unplayable, cfg.ann_min_items)
        playable = events[~events["video_id"].isin(unplayable)]
        end = run_date_end_epoch_s(run_date)
        popular = popular_items(playable, end, cfg.popular_window_days, cfg.topk)
        by_category = category_popular(playable, source.videos, end, cfg.popular_window_days, cfg.topk)
        meta = publish_version(
            client,
            cfg.namespace,
            model.version,
            topk,
            popular,
            cfg.ttl_seconds,
            similar=similar,
            by_category=by_category,
            grace_seconds=cfg.version_grace_seconds,
        )
    finally:
        client.close()
    record_live(cfg, model.version, run_date)
    return {**meta, "published": True, "reason": why, "namespace": cfg.namespace,
            "seconds": round(time.perf_counter() - t0, 2)}  # fmt: skip


def connect(cfg: PipelineConfig):  # type: ignore[no-untyped-def]
    """The offline side's Redis client (redis-py; bounded connect and read timeouts)."""
    import redis

    return redis.Redis.from_url(cfg.redis_url, socket_timeout=10, socket_connect_timeout=5)


POPULAR_ONLY_PREFIX = "popular-"  # versions published without a model (a trained one replaces them)


def newest_items(videos: pd.DataFrame, k: int) -> tuple[list[str], list[float]]:
    """Day zero's popular list: the newest videos by ``published_at`` (unknown dates last, then by
    id); score 0 (nothing has been watched)."""
    order = videos.assign(p=pd.to_numeric(videos.get("published_at"), errors="coerce")).sort_values(
        ["p", "video_id"], ascending=[False, True], na_position="last", kind="stable"
    )
    ids = order["video_id"].head(k).tolist()
    return ids, [0.0] * len(ids)


def live_record_path(cfg: PipelineConfig) -> Path:
    return cfg.workdir / "live" / f"{cfg.namespace}.json"


def record_live(cfg: PipelineConfig, version: str, run_date: str) -> None:
    """Remember, outside Redis, which version this workdir last made live in the namespace (and
    whose events it scored): what to republish when Redis loses its data."""
    write_json(live_record_path(cfg), {"version": version, "run_date": run_date, "at": time.time()})


def recorded_live(cfg: PipelineConfig) -> dict[str, object] | None:
    path = live_record_path(cfg)
    return json.loads(path.read_text()) if path.exists() else None


def run_date_of_version(version: str) -> str:
    """``20261128-1a2b3c4d`` or ``popular-20261128`` -> ``2026-11-28`` (the run that exported it)."""
    digits = version.removeprefix(POPULAR_ONLY_PREFIX)[:8]
    if not (len(digits) == 8 and digits.isdigit()):
        raise ValueError(f"{version!r} is not a version id (YYYYMMDD-<digest> or {POPULAR_ONLY_PREFIX}YYYYMMDD)")
    return f"{digits[:4]}-{digits[4:6]}-{digits[6:]}"


def republish(cfg: PipelineConfig, version: str, run_date: str | None = None) -> dict[str, object]:
    """Publish an exported version again from its model folder (ungated: a deliberate choice), with
    the events of ``run_date`` (default: the run that exported it; its ingest partition must still
    be in the workdir). The same version, folder and events give the same bytes in Redis."""
    run_date = run_date or run_date_of_version(version)
    if version.startswith(POPULAR_ONLY_PREFIX):
        return publish_without_model(cfg, run_date, f"republished {version}", replace_live=True)
    return publish_model(cfg, run_date, train.load_model_version(cfg, version), gate=False)


def live_lost(cfg: PipelineConfig) -> str | None:
    """The version this workdir last made live, when Redis no longer holds it live (its pointer or
    its metadata is gone: a restart without persistence, a failover to an empty replica)."""

    record = recorded_live(cfg)
    if record is None:
        return None
    client = connect(cfg)
    try:
        live = client.get(keys.live_key(cfg.namespace))
        if live is None or not client.exists(keys.meta_key(cfg.namespace, live.decode())):
            return str(record["version"])
        return None
    finally:
        client.close()


def publish_without_model(
    cfg: PipelineConfig, run_date: str, reason: str, replace_live: bool = False
) -> dict[str, object]:
    """A night without a model (``train.NoModel``): when nothing is live yet, publish a version with
    no user lists whose popular and category lists come from the events (or, with none, the newest
    videos), so every user gets a degraded-but-real answer from day one. A live trained version is
    kept; a live popular-only one is replaced (its lists are a day older)."""

    client = connect(cfg)
    try:
        raw = client.get(keys.live_key(cfg.namespace))
        if raw and not replace_live and not raw.startswith(POPULAR_ONLY_PREFIX.encode()):  # a model stays live
            return {"version": None, "published": False, "live_version": raw.decode(),
                    "reason": f"no model tonight ({reason}); the live version stays"}  # fmt: skip
        source = ingest.load(cfg, run_date)
        unplayable = frozenset(frame_features.load_quarantine(cfg, run_date)["video_id"])
        playable = source.events[~source.events["video_id"].isin(unplayable)]
        videos = source.videos[~source.videos["video_id"].isin(unplayable)]
        end = run_date_end_epoch_s(run_date)
        if len(playable):
            popular = popular_items(playable, end, cfg.popular_window_days, cfg.topk)
            by_category = category_popular(playable, videos, end, cfg.popular_window_days, cfg.topk)
        else:
            popular = newest_items(videos, cfg.topk)
            by_category = {
                str(c): newest_items(group, cfg.topk)
                for c, group in videos.groupby("category")
                if c and keys_safe(str(c))
            }
        version = f"{POPULAR_ONLY_PREFIX}{run_date.replace('-', '')}"
        meta = publish_version(
            client, cfg.namespace, version, TopK([], [], []), popular, cfg.ttl_seconds,
            by_category=by_category, grace_seconds=cfg.version_grace_seconds,
        )  # fmt: skip
    finally:
        client.close()
    record_live(cfg, version, run_date)
    return {**meta, "published": True, "namespace": cfg.namespace,
            "reason": f"no model tonight ({reason}): popular-only version"}  # fmt: skip


def run(cfg: PipelineConfig, run_date: str, gate: bool = True) -> dict[str, object]:
    """The nightly publish step: the run date's model, gated against the live one."""
    restored: dict[str, object] | None = None
    if (lost := live_lost(cfg)) is not None:
        # First bring back what was live (the gate below compares against it and may hold the new
        # model back; without this, Redis would stay empty until a model passes the gate).
        log.warning("Redis lost live version %s of %s: republishing it", lost, cfg.namespace)
        try:
            restored = republish(cfg, lost)
        except (FileNotFoundError, ValueError, PublishError) as exc:  # e.g. its partition was cleaned up
            log.error("cannot republish %s (%s); publishing tonight's version ungated by it", lost, exc)
            restored = {"version": lost, "published": False, "error": str(exc)}
    try:
        model = train.load_model(cfg, run_date)
    except train.NoModel as exc:
        summary = publish_without_model(cfg, run_date, str(exc))
    else:
        summary = publish_model(cfg, run_date, model, gate=gate and cfg.publish_gate)
    if restored is not None:
        summary = {
            **summary,
            "restored_live": {k: restored[k] for k in ("version", "keys", "published", "error") if k in restored},
        }
    write_json(cfg.partition(run_date, "publish") / "summary.json", summary)
    log.info("publish %s: %s", run_date, summary)
    return summary


def rollback(client, ns: str) -> dict[str, object]:  # type: ignore[no-untyped-def]
    """Point ``live`` back at the newest other published version whose keys are still there."""
    raw = client.get(keys.live_key(ns))
    live = raw.decode() if raw else None
    for candidate in (v.decode() for v in client.zrevrange(keys.versions_key(ns), 0, -1)):
        if candidate != live and client.exists(keys.meta_key(ns, candidate)):
            client.set(keys.live_key(ns), candidate)
            log.warning("rolled %s back from %s to %s", ns, live, candidate)
            return {"namespace": ns, "from": live, "to": candidate}
    raise PublishError(f"no earlier version of {ns} is still in Redis to roll back to (live: {live})")
