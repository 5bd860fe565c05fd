"""The versioned write path to Redis: write a new version's lists, verify them, flip the live
pointer, clean up old versions; roll back.

1. Write: versioned keys, SET with a TTL, ``WRITE_CHUNK`` per batch, batches pipelined on one
   connection read by hiredis; values encoded from top-k index matrices and packed into RESP by
   compiled loops (``cache.packed``, ``cache.kernels``) on a thread ahead of the socket.
2. Verify: every key exists and a sample reads back byte-identical.
3. Flip: one SET of ``vidrec:{ns}:live``. Readers see the old version or the new one, never a mix.
4. Clean up: versions other than the live one and a rollback target published more than
   ``grace_seconds`` ago are UNLINKed (found with SCAN, never KEYS).

On a Redis Cluster (``connect`` of a ``redis+cluster://`` URL gives redis-py's ``RedisCluster``)
step 1 and 2 run per master, on a thread each: the rows are grouped by the node serving each
key's slot (the compiled ``id_slots`` over the ids, which are the keys' hash tags), each group
written and verified on its node's own connection, with one ``EXISTS`` per slot (a multi-key
command must stay within one slot; a node's rows are written in slot order). Steps 3 and 4 go
through ``RedisCluster``.

Writing the same version again writes the same keys with the same values (idempotent).
``client`` is a redis-py client (``redis.Redis``); redis-py is imported inside the functions.
"""

from __future__ import annotations

import collections
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from cache import keys
from cache.packed import VocabBytes, concat_bytes, encode_row_blocks
from cache.resp import pack
from recsys.prefetch import prefetched

log = logging.getLogger(__name__)

WRITE_CHUNK = 1000
PIPELINE_WINDOW = 2  # batches sent ahead of the replies read
VERIFY_SAMPLE = 50
_OK = b"+OK\r\n"
Buffer = bytes | memoryview | np.ndarray  # what socket.sendall takes


def connect(url: str):  # type: ignore[no-untyped-def]
    """The offline side's Redis client (redis-py; bounded connect and read timeouts): publish,
    landing, the refresher. A ``redis+cluster://`` URL gives a ``RedisCluster`` (``cache.cluster``)."""
    import redis

    from cache.cluster import is_cluster_url, parse_cluster_url

    if not is_cluster_url(url):
        return redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5)
    from redis.cluster import ClusterNode, RedisCluster

    t = parse_cluster_url(url)
    return RedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in t.seeds],
        username=t.username,
        password=t.password,
        ssl=t.tls,
        socket_timeout=10,
        socket_connect_timeout=5,
    )


def is_cluster(client) -> bool:  # type: ignore[no-untyped-def]
    from redis.cluster import RedisCluster

    return isinstance(client, RedisCluster)


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

    def rows(self, rows: np.ndarray) -> TopK:
        return TopK([self.user_ids[i] for i in rows], [self.item_ids[i] for i in rows], [self.scores[i] for i in rows])


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

    def rows(self, rows: np.ndarray) -> TopKMatrix:
        return TopKMatrix([self.user_ids[i] for i in rows], self.vocab, self.index[rows], self.scores[rows])


@dataclass(frozen=True)
class Written:
    """Users whose lists were written earlier (by publish shards): their keys are only checked."""

    user_ids: list[str]
    bytes: int = 0
    """The bytes of their lists (the shards' sum), for the version's meta."""

    def rows(self, rows: np.ndarray) -> Written:
        return Written([self.user_ids[i] for i in rows])


Lists = tuple[list[str], list[float]]


@dataclass
class VersionWrite:
    """One version's keys as RESP batches: the ranked lists (per user, per similar video) and the
    single lists (popular, per category); remembers a sample of (key, value) pairs to read back and
    the bytes written. ``batches()`` then ``exists_batches()`` are sent by ``pipelined``."""

    lists: list[tuple[bytes, TopK | TopKMatrix | Written]]
    singles: list[tuple[bytes, Lists]]
    ttl_seconds: int
    per_slot_exists: bool = False
    """Verify with one EXISTS per run of keys in one slot (a cluster node: multi-key commands must
    stay in one slot)."""
    sample: list[tuple[bytes, bytes]] = field(default_factory=list)
    bytes: int = 0
    user_bytes: int = 0

    def __post_init__(self) -> None:
        self.ids = [concat_bytes([u.encode() for u in ranked.user_ids]) for _, ranked in self.lists]
        self.n_keys = sum(len(t.user_ids) for _, t in self.lists) + len(self.singles)
        rng = np.random.default_rng(0)
        self.sample_at = sorted(rng.choice(self.n_keys, min(VERIFY_SAMPLE, self.n_keys), replace=False).tolist())

    def batches(self) -> Iterator[tuple[memoryview | bytes, int]]:
        """``SET key value EX ttl`` commands as RESP, ``WRITE_CHUNK`` per batch, built from each
        encoded block by a compiled loop (no per-key Python objects). Blocks are encoded as they
        are written: only the sample of values stays in memory."""
        first = 0  # index of the block's first key among all keys
        for (prefix, ranked), ids in zip(self.lists, self.ids, strict=True):
            for cmds, ends, n in self._ranked_commands(prefix, ranked, ids, first):
                if not n:
                    continue
                view = memoryview(cmds)
                for s in range(0, n, WRITE_CHUNK):
                    e = min(s + WRITE_CHUNK, n)
                    yield view[int(ends[s - 1]) if s else 0 : int(ends[e - 1])], e - s
                first += n
        single_keys = [key for key, _ in self.singles]
        values = [keys.encode_items(*lst) for _, lst in self.singles]
        self.bytes += sum(map(len, values))
        self.sample.extend((single_keys[j - first], values[j - first]) for j in self.sample_at if j >= first)
        cmds = [pack([b"SET", key, v, b"EX", self.ttl_seconds]) for key, v in zip(single_keys, values, strict=True)]
        if cmds:
            yield b"".join(cmds), len(cmds)

    def _ranked_commands(
        self, prefix: bytes, ranked: TopK | TopKMatrix, ids: tuple[np.ndarray, np.ndarray], first: int
    ) -> Iterator[tuple[np.ndarray, np.ndarray, int]]:
        """(RESP bytes, end offset of each command, n) per encoded block of one kind of list."""
        from cache.kernels import resp_keyed_commands

        set_head = np.frombuffer(b"*5\r\n$3\r\nSET\r\n", np.uint8)
        ex_tail = np.frombuffer(pack([b"EX", self.ttl_seconds])[4:], np.uint8)  # the EX pair, no array line
        (id_data, id_starts), p, start = ids, np.frombuffer(prefix, np.uint8), 0
        suffix = np.frombuffer(keys.TAG_SUFFIX, np.uint8)
        for buf, off in ranked.encoded_blocks():
            n = len(off) - 1
            if start + n > len(ranked.user_ids):  # checked here: the kernel does not check bounds
                raise PublishError(f"more lists encoded than the {len(ranked.user_ids)} ids")
            cmds, ends = resp_keyed_commands(set_head, p, suffix, id_data, id_starts, start, buf, off, ex_tail)
            block_bytes = int(off[-1] - off[0])
            self.bytes += block_bytes
            if prefix.endswith(b":u:{"):
                self.user_bytes += block_bytes
            for j in self.sample_at:
                if first + start <= j < first + start + n:
                    i = j - first
                    uid = id_data[id_starts[i] : id_starts[i + 1]].tobytes()
                    key = prefix + uid + keys.TAG_SUFFIX
                    self.sample.append((key, buf[off[i - start] : off[i - start + 1]].tobytes()))
            yield cmds, ends, n
            start += n
        if start != len(ranked.user_ids):
            raise PublishError(f"{start} lists encoded for {len(ranked.user_ids)} ids")

    def exists_batches(self) -> Iterator[tuple[bytes | np.ndarray, int]]:
        """One EXISTS per ``WRITE_CHUNK`` keys, then one for the single lists (``per_slot_exists``:
        one EXISTS per run of keys in the same cluster slot, ``WRITE_CHUNK // 8`` runs a batch)."""
        from cache.kernels import id_slots, resp_grouped_commands, resp_multikey_command

        suffix = np.frombuffer(keys.TAG_SUFFIX, np.uint8)
        for (prefix, _), (id_data, id_starts) in zip(self.lists, self.ids, strict=True):
            p = np.frombuffer(prefix, np.uint8)
            if self.per_slot_exists:  # a multi-key command must stay within one slot
                slots = id_slots(id_data, id_starts)
                bounds = np.flatnonzero(np.diff(slots)) + 1 if len(slots) else np.zeros(0, np.int64)
                bounds = np.concatenate([[0], bounds, [len(slots)]]).astype(np.int64)
                name = np.frombuffer(b"$6\r\nEXISTS\r\n", np.uint8)
                for g in range(0, len(bounds) - 1, WRITE_CHUNK // 8):
                    part = bounds[g : g + WRITE_CHUNK // 8 + 1]
                    yield resp_grouped_commands(name, p, suffix, id_data, id_starts, part), len(part) - 1
                continue
            for s in range(0, len(id_starts) - 1, WRITE_CHUNK):
                part = id_starts[s : s + WRITE_CHUNK + 1]
                head = np.frombuffer(b"*%d\r\n$6\r\nEXISTS\r\n" % len(part), np.uint8)
                yield resp_multikey_command(head, p, suffix, id_data, part), 1
        if self.singles and self.per_slot_exists:
            yield b"".join(pack([b"EXISTS", key]) for key, _ in self.singles), len(self.singles)
        elif self.singles:
            yield pack([b"EXISTS", *(key for key, _ in self.singles)]), 1

    def write_and_verify(self, client) -> None:  # type: ignore[no-untyped-def]
        """Write every key, then check they all exist and the sample reads back byte-identical (on a
        Redis Cluster: per master, on a thread each; the first failure is raised)."""
        if is_cluster(client):
            self._write_and_verify_by_node(client)
            return
        ahead = prefetched(self.batches(), depth=4)  # packed on a thread, ahead of the socket
        try:
            write_batches(client, ahead)
        finally:
            ahead.close()  # on failure: stops the packing thread now, not when garbage is collected
        present = count_existing(client, self.exists_batches())
        if present != self.n_keys:
            raise PublishError(f"verification failed: {present} of {self.n_keys} keys present after write")
        sample_keys = [k for k, _ in self.sample]
        if self.per_slot_exists:  # one slot per command on a cluster node
            pipe = client.pipeline(transaction=False)
            for k in sample_keys:
                pipe.get(k)
            got_values = pipe.execute()
        else:
            got_values = client.mget(sample_keys) if sample_keys else []
        for (key, value), got in zip(self.sample, got_values, strict=True):
            if got != value:
                raise PublishError(f"verification failed: {key.decode()} reads back different bytes")

    def by_node(self, cluster) -> list[tuple[object, VersionWrite]]:  # type: ignore[no-untyped-def]
        """This write split by the cluster master serving each key: (node, its part), each part
        verified per slot; a node's rows in slot order."""
        from cache.cluster import SLOTS, key_slot
        from cache.kernels import id_slots

        nodes: list = []
        owner = np.full(SLOTS, -1, np.int64)  # slot -> index into nodes
        for slot, serving in cluster.nodes_manager.slots_cache.items():
            if serving:
                if serving[0] not in nodes:
                    nodes.append(serving[0])
                owner[slot] = nodes.index(serving[0])

        def node_index(slots: np.ndarray) -> np.ndarray:
            idx = owner[slots]
            if (idx < 0).any():
                raise PublishError(f"no Redis Cluster master serves slot {int(slots[np.argmax(idx < 0)])}")
            return idx

        parts: list[tuple[list, list]] = [([], []) for _ in nodes]
        for (prefix, ranked), (id_data, id_starts) in zip(self.lists, self.ids, strict=True):
            slots = id_slots(id_data, id_starts)
            row_node = node_index(slots)
            by_slot = np.argsort(slots, kind="stable")  # a node's rows in slot order: one EXISTS per slot
            for i, part in enumerate(parts):
                rows = by_slot[row_node[by_slot] == i]
                if len(rows):
                    part[0].append((prefix, ranked.rows(rows)))
        for key, lst in self.singles:
            parts[int(node_index(np.array([key_slot(key)]))[0])][1].append((key, lst))
        return [
            (node, VersionWrite(lists, singles, self.ttl_seconds, per_slot_exists=True))
            for node, (lists, singles) in zip(nodes, parts, strict=True)
            if lists or singles
        ]

    def missing(self, client) -> int:  # type: ignore[no-untyped-def]
        """How many of this write's keys are not in Redis (on a cluster: per master)."""
        if is_cluster(client):
            return sum(part.missing(client.get_redis_connection(node)) for node, part in self.by_node(client))
        return self.n_keys - count_existing(client, self.exists_batches())

    def _write_and_verify_by_node(self, cluster) -> None:  # type: ignore[no-untyped-def]
        from concurrent.futures import ThreadPoolExecutor

        parts = self.by_node(cluster)
        with ThreadPoolExecutor(max_workers=max(1, len(parts))) as pool:
            futures = [pool.submit(part.write_and_verify, cluster.get_redis_connection(node)) for node, part in parts]
            for f in futures:
                f.result()
        for _, part in parts:
            self.bytes += part.bytes
            self.user_bytes += part.user_bytes


def write_lists(client, ns: str, version: str, topk: TopK | TopKMatrix, ttl_seconds: int) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """Write and verify some users' lists of ``version`` (a publish shard); the live pointer is not
    touched. Writing the same lists again writes the same bytes."""
    import redis

    write = VersionWrite([(keys.user_prefix(ns, version).encode(), topk)], [], ttl_seconds)
    try:
        write.write_and_verify(client)
    except redis.RedisError as exc:
        raise PublishError(f"Redis error while writing lists of {version}: {exc}") from exc
    return {"users": len(topk.user_ids), "bytes": write.bytes}


def publish_version(
    client,
    ns: str,
    version: str,
    topk: TopK | TopKMatrix | Written,
    popular: Lists,
    ttl_seconds: int,
    similar: TopK | TopKMatrix | None = None,
    by_category: dict[str, Lists] | None = None,
    grace_seconds: int = 3600,
    now: float | None = None,
) -> dict[str, object]:
    """Write, verify, flip, clean up. Raises PublishError (live pointer untouched) if verification fails.

    ``topk`` as ``Written``: the users' lists were written by publish shards (``write_lists``); here
    they are only checked to be all present before the flip."""
    import redis

    prewritten = isinstance(topk, Written)
    n_users, shard_bytes = len(topk.user_ids), topk.bytes if prewritten else 0
    if prewritten:
        check = VersionWrite([(keys.user_prefix(ns, version).encode(), topk)], [], ttl_seconds)
        try:
            lost = check.missing(client)
        except redis.RedisError as exc:
            raise PublishError(f"Redis error while checking the shards of {version}: {exc}") from exc
        if lost:
            raise PublishError(f"{lost} of {check.n_keys} users' lists of {version} are missing; not flipped")
        topk = TopK([], [], [])
    lists = [(keys.user_prefix(ns, version).encode(), topk)]
    if similar:
        lists.append((keys.similar_prefix(ns, version).encode(), similar))
    singles = [(keys.popular_key(ns, version).encode(), popular)] + [
        (keys.category_popular_key(ns, version, c).encode(), lst) for c, lst in (by_category or {}).items()
    ]
    write = VersionWrite(lists, singles, ttl_seconds)
    try:
        write.write_and_verify(client)
        meta: dict[str, object] = {
            "version": version,
            "users": n_users,
            "similar": len(similar.user_ids) if similar is not None else 0,
            "categories": len(by_category or {}),
            "popular": len(popular[0]),
            "keys": write.n_keys + (n_users if prewritten else 0),
            "bytes": write.bytes + shard_bytes,
            "bytes_per_user_list": round((write.user_bytes + shard_bytes) / n_users, 1) if n_users else 0.0,
        }
        client.set(keys.meta_key(ns, version), json.dumps(meta), ex=ttl_seconds)
        meta.update(flip(client, ns, version, grace_seconds, time.time() if now is None else now))
    except redis.RedisError as exc:
        raise PublishError(f"Redis error while publishing {version}: {exc}") from exc
    return meta


def flip(client, ns: str, version: str, grace_seconds: int, now: float) -> dict[str, object]:  # type: ignore[no-untyped-def]
    """Point ``live`` at ``version`` (one SET), then remove versions older than ``grace_seconds``
    but the live one and a rollback target (the one it replaced, or else the newest other)."""
    previous = client.get(keys.live_key(ns))
    # Registered before the flip, so a version that ever went live is always known to cleanup.
    client.zadd(keys.versions_key(ns), {version: now})
    client.set(keys.live_key(ns), version)  # the flip: one command
    prev = previous.decode() if previous else None
    newest_other = [v.decode() for v in client.zrevrange(keys.versions_key(ns), 0, 1) if v.decode() != version]
    keep = {version, prev, *newest_other[:1]} - {None}
    removed = remove_old_versions(client, ns, keep=keep, older_than=now - grace_seconds)
    return {"previous_version": prev, "removed_versions": removed}


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

    Commands are packed by the caller (``cache.kernels.resp_keyed_commands`` for whole blocks):
    redis-py's per-argument packing cost more than Redis's own work (25k keys/s against ~400k/s
    for redis-benchmark -P 1000 on this project's benchmark machine), and formatting each SET in
    Python was still a fifth of the publish time."""
    for _ in pipelined(client, batches, all_ok=True):
        pass


def count_existing(client, batches: Iterator[tuple[Buffer, int]]) -> int:  # type: ignore[no-untyped-def]
    """The sum of the replies of a run of pipelined EXISTS commands."""
    return sum(sum(map(int, r)) for r in pipelined(client, batches))  # type: ignore[arg-type]


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


_WRITE_IF_LIVE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
local ttl = redis.call('PTTL', KEYS[2])
if ttl <= 0 then return -2 end
for i = 3, #KEYS do redis.call('SET', KEYS[i], ARGV[i - 1], 'PX', ttl) end
return #KEYS - 2
"""


def write_if_live(client, ns: str, version: str, values: dict[str, bytes]) -> int:  # type: ignore[no-untyped-def]
    """SET each key of ``version`` (full key names, e.g. ``keys.user_key``) to its value, expiring
    with the version (its meta key's remaining TTL), in one script: atomically, and only while
    ``version`` is live, so a publish that flipped the pointer meanwhile is never undone. Returns
    the keys written, -1 when ``version`` is no longer live, -2 when its meta key is gone (the
    version expired)."""
    if is_cluster(client):
        return _write_if_live_cluster(client, ns, version, values)
    names = [keys.live_key(ns), keys.meta_key(ns, version), *values]
    return int(client.eval(_WRITE_IF_LIVE, len(names), *names, version, *values.values()))


def _write_if_live_cluster(client, ns: str, version: str, values: dict[str, bytes]) -> int:  # type: ignore[no-untyped-def]
    """``write_if_live`` on a Redis Cluster, where one script cannot read the live pointer and
    write users' keys in other slots: check, write (pipelined per node), check again. A publish
    that flips the pointer in between is still never undone (only keys of ``version`` are written,
    and they expire with it); the second check reports it as -1, as the script would have."""
    if client.get(keys.live_key(ns)) != version.encode():
        return -1
    ttl = client.pttl(keys.meta_key(ns, version))
    if ttl <= 0:
        return -2
    pipe = client.pipeline(transaction=False)
    for key, value in values.items():
        pipe.set(key, value, px=ttl)
    pipe.execute()
    return len(values) if client.get(keys.live_key(ns)) == version.encode() else -1
