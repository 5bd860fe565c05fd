"""The API's Redis Cluster client: ``PipelinedRedis``' interface and guarantees, per node.

Each master gets its own ``PipelinedRedis`` (its few long-lived connections, the timeouts, the
bound on waiting requests, the reconnection), opened when first needed. A call's commands are
grouped by the node serving each key's slot and sent to the nodes at once; one user's keys share
a hash tag (``cache.keys``), so a cache hit is one round trip to one node. MOVED replies update
the slot map (and reload it in the background), ASK replies are retried once on the named node
after ``ASKING``; at most ``MAX_REDIRECTS`` hops. ``guard(node, fn)`` wraps every call to one
node: the store passes a circuit breaker per node, so a dead master degrades only its slots.

Pure Python + hiredis, as ``cache.client``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import hiredis

from cache.client import PipelinedRedis, RawReplies, RedisUnavailable
from cache.cluster import SlotMap, key_slot, parse_cluster_url, parse_redirect
from cache.resp import Arg

MAX_REDIRECTS = 3
KEYLESS = frozenset({"PING", "CLUSTER", "INFO", "ASKING"})
_KEYLESS_ARGS = (
    KEYLESS | {k.lower() for k in KEYLESS} | {k.encode() for k in KEYLESS} | {k.lower().encode() for k in KEYLESS}
)
_ASKING: tuple[Arg, ...] = ("ASKING",)  # sent before an ASK-redirected command; its reply is dropped
SLOT_CACHE_SIZE = 200_000  # keys whose slot is remembered (a cache hit's keys repeat per user)
Node = tuple[str, int]
Guard = Callable[[Node, Callable[[], Awaitable[list[object]]]], Awaitable[list[object]]]


async def _unguarded(node: Node, fn: Callable[[], Awaitable[list[object]]]) -> list[object]:
    return await fn()


class ClusterPipelinedRedis(RawReplies):
    def __init__(
        self,
        url: str,
        connections: int = 2,
        timeout: float = 0.25,
        max_pending: int = 10_000,
        guard: Guard | None = None,
    ) -> None:
        self._target = parse_cluster_url(url)
        self._options: dict[str, Any] = {"connections": connections, "timeout": timeout, "max_pending": max_pending}
        self._guard = guard or _unguarded
        self._clients: dict[Node, PipelinedRedis] = {}
        self._map: SlotMap | None = None
        self._slots: dict[object, int] = {}
        self._loading: asyncio.Future | None = None  # type: ignore[type-arg]
        self.redirects = 0
        """MOVED and ASK replies followed (a resharding in progress, or a stale map)."""

    def _client(self, node: Node) -> PipelinedRedis:
        client = self._clients.get(node)
        if client is None:
            client = self._clients[node] = PipelinedRedis(self._target.node_url(*node), **self._options)
        return client

    async def slot_map(self) -> SlotMap:
        if self._map is None:
            await self.reload()
        return self._map  # type: ignore[return-value]

    async def reload(self) -> None:
        """Read the slot map again (concurrent callers share one attempt)."""
        await asyncio.shield(self._start_load())

    def _start_load(self) -> asyncio.Future:  # type: ignore[type-arg]
        """The slot-map read in flight, started when none is."""
        if self._loading is None:
            self._loading = asyncio.ensure_future(self._load())
            self._loading.add_done_callback(self._loaded)
        return self._loading

    def _loaded(self, fut: asyncio.Future) -> None:  # type: ignore[type-arg]
        self._loading = None
        if not fut.cancelled():
            fut.exception()  # retrieved: a failed background reload must not log "never retrieved"

    async def _load(self) -> None:
        known = self._map.nodes if self._map is not None else []
        errors = []
        for node in [*known, *(n for n in self._target.seeds if n not in known)]:
            try:
                (reply,) = await self._client(node).execute_many([("CLUSTER", "SLOTS")])
            except RedisUnavailable as exc:
                errors.append(f"{node[0]}:{node[1]}: {exc}")
                continue
            self._map = SlotMap.from_reply(reply, default_host=node[0])  # type: ignore[arg-type]
            return
        raise RedisUnavailable("no Redis Cluster node answered CLUSTER SLOTS (" + "; ".join(errors) + ")")

    def _node_for(self, smap: SlotMap, command: tuple[Arg, ...]) -> Node:
        if len(command) < 2 or command[0] in _KEYLESS_ARGS:
            return smap.nodes[0] if smap.nodes else self._target.seeds[0]
        key = command[1]
        slot = self._slots.get(key)
        if slot is None:
            if len(self._slots) >= SLOT_CACHE_SIZE:
                self._slots.clear()
            slot = self._slots[key] = key_slot(key if isinstance(key, bytes | str) else str(key))
        node = smap.node_of(slot)
        if node is None:
            raise RedisUnavailable(f"no Redis Cluster master serves slot {slot}")
        return node

    async def _send(self, node: Node, commands: list[tuple[Arg, ...]]) -> list[object]:
        client = self._client(node)
        return await self._guard(node, lambda: client.execute_raw(commands))

    async def _send_groups(self, groups: dict[Node, list[tuple[Arg, ...]]]) -> dict[Node, list[object]]:
        if len(groups) == 1:
            ((node, cmds),) = groups.items()
            return {node: await self._send(node, cmds)}
        results = await asyncio.gather(*(self._send(n, c) for n, c in groups.items()), return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException):
                raise r
        return dict(zip(groups, results, strict=True))  # type: ignore[arg-type]

    async def execute_raw(self, commands: list[tuple[Arg, ...]]) -> list[object]:
        """The replies in order (error replies as values), each command sent to its slot's node."""
        smap = self._map or await self.slot_map()
        where = [self._node_for(smap, c) for c in commands]
        first = where[0]
        if all(n == first for n in where):  # the usual case: one user's keys, one node
            replies = await self._send(first, commands)
        else:
            groups: dict[Node, list[tuple[Arg, ...]]] = {}
            for node, c in zip(where, commands, strict=True):
                groups.setdefault(node, []).append(c)
            answered = {n: iter(r) for n, r in (await self._send_groups(groups)).items()}
            replies = [next(answered[n]) for n in where]
        for _ in range(MAX_REDIRECTS):
            hops = {}
            for i, r in enumerate(replies):
                if isinstance(r, hiredis.ReplyError) and (redirect := parse_redirect(str(r))):
                    hops[i] = redirect
            if not hops:
                return replies
            await self._follow(smap, commands, replies, hops)
        return replies

    async def _follow(
        self,
        smap: SlotMap,
        commands: list[tuple[Arg, ...]],
        replies: list[object],
        hops: dict[int, tuple[str, int, Node]],
    ) -> None:
        """Resend redirected commands to the named nodes and put their replies in ``replies``."""
        self.redirects += len(hops)
        groups: dict[Node, list[tuple[Arg, ...]]] = {}
        slots: dict[Node, list[int]] = {}
        moved = False
        for i, (kind, slot, node) in hops.items():
            if kind == "MOVED":
                smap.moved(slot, node)
                moved = True
                groups.setdefault(node, []).append(commands[i])
            else:  # ASK: this command only, on that node, after ASKING
                groups.setdefault(node, []).extend([_ASKING, commands[i]])
            slots.setdefault(node, []).append(i)
        if moved:
            self._start_load()  # in the background: the rest of the map likely moved too
        for node, got in (await self._send_groups(groups)).items():
            answers = [r for c, r in zip(groups[node], got, strict=True) if c is not _ASKING]
            for i, r in zip(slots[node], answers, strict=True):
                replies[i] = r

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()
        self._clients.clear()
