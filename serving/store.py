"""Read side of the published lists in Redis (async), with an in-process copy of the popular list.

Every method either answers from Redis or raises ``StoreUnavailable``; the routes turn that into
a degraded answer from the in-process copy. No TensorFlow, no numpy: one round trip per hit,
pipelined with other requests' commands on a few connections (``cache.client``).

Every call goes through a circuit breaker (``serving.breaker``): after consecutive timeouts the
store fails at once for a cool-down, then one probe tries Redis again. Redis that answers but has
lost the published data (restarted without persistence, failed over to an empty replica) raises
``DataLost`` naming the version to republish; the routes serve the in-process copy meanwhile.
"""

from __future__ import annotations

import logging
import time

from cache import keys
from cache.client import PipelinedRedis, RedisUnavailable
from cache.cluster import is_cluster_url
from cache.cluster_client import ClusterPipelinedRedis
from cache.resp import Arg
from serving.breaker import CircuitBreaker, NodeBreakers

log = logging.getLogger(__name__)

StoreUnavailable = RedisUnavailable
"""Redis did not answer in time (or at all), or answered with an error."""


class DataLost(StoreUnavailable):
    """Redis answers but no longer holds what was published (the live pointer or its lists)."""

    def __init__(self, version: str, what: str) -> None:
        super().__init__(
            f"Redis has lost {what} of version {version} (restarted empty or failed over?); "
            f"republish it: vidrec publish --version {version}"
        )
        self.version = version


class RedisTopKStore:
    def __init__(
        self,
        client: PipelinedRedis | ClusterPipelinedRedis,
        namespace: str,
        live_cache_seconds: float,
        breaker: CircuitBreaker | NodeBreakers | None = None,
    ) -> None:
        self._client = client
        self.breaker = breaker or CircuitBreaker()
        # On a cluster the live pointer is one node's key: while that node is unreachable, the
        # version last read stays in use, so the users on the other nodes keep their lists.
        self._stale_live_ok = isinstance(client, ClusterPipelinedRedis)
        self._ns = namespace
        self._live_key = keys.live_key(namespace)
        self._live_cache_seconds = live_cache_seconds
        self._live: tuple[float, str | None] = (0.0, None)
        self.last_live: str | None = None  # the newest live version this process has seen
        self.has_fresh = False  # the live version has videos added by `vidrec fresh` (read with it)
        # Last popular list read from Redis: (version, items). Served when Redis is down.
        self.popular_copy: tuple[str, list[tuple[str, float]]] | None = None

    @classmethod
    def from_settings(cls, settings) -> RedisTopKStore:  # type: ignore[no-untyped-def]
        """One Redis, or a Redis Cluster when the URL says ``redis+cluster://`` (``cache.cluster``):
        then a breaker per node, so a lost master degrades only the users in its slots."""
        options = {
            "connections": settings.redis_connections,
            "timeout": settings.redis_timeout_seconds,
            "max_pending": settings.redis_max_pending,
        }
        limits = (settings.redis_breaker_failures, settings.redis_breaker_cooldown_seconds)
        if is_cluster_url(settings.redis_url):
            breakers = NodeBreakers(*limits)
            cluster = ClusterPipelinedRedis(settings.redis_url, guard=breakers.guard, **options)
            return cls(cluster, settings.namespace, settings.live_version_cache_seconds, breakers)
        client = PipelinedRedis(settings.redis_url, **options)
        return cls(client, settings.namespace, settings.live_version_cache_seconds, CircuitBreaker(*limits))

    async def _execute(self, *args: Arg) -> object:
        return await self.breaker.call(lambda: self._client.execute(*args))

    async def _execute_many(self, commands: list[tuple[Arg, ...]]) -> list[object]:
        return await self.breaker.call(lambda: self._client.execute_many(commands))

    async def close(self) -> None:
        await self._client.close()

    async def live_version(self) -> str | None:
        fetched_at, version = self._live
        now = time.monotonic()
        if version is not None and now - fetched_at < self._live_cache_seconds:
            return version
        try:
            raw = await self._execute("GET", self._live_key)
        except RedisUnavailable:
            if self._stale_live_ok and self.last_live is not None:
                return self.last_live
            raise
        version = raw.decode() if raw else None  # type: ignore[attr-defined]
        if version is None and self.last_live is not None:
            raise DataLost(self.last_live, "the live pointer")
        # Once per refresh: has ``vidrec fresh`` added videos to it? Only then do answers read the
        # user's fresh picks (a third GET in their round trip, ~8% of a cache hit's cost).
        self.has_fresh = bool(version) and bool(await self._execute("EXISTS", keys.fresh_key(self._ns, version)))
        self._live = (now, version)
        self.last_live = version
        return version

    async def _get_list(self, key: str) -> list[tuple[str, float]] | None:
        raw = await self._execute("GET", key)
        return keys.decode_items(raw) if raw else None  # type: ignore[arg-type]

    async def user_view(
        self, version: str, user_id: str, recent: int, needed: int, with_fresh: bool = False
    ) -> tuple[list[tuple[str, float]] | None, list[str], list[tuple[str, float]]]:
        """(the user's precomputed list or None, videos they watched recently, newest first, and
        with ``with_fresh`` the new videos picked for them by ``vidrec fresh``), in one round trip.
        Of the list, only the first ``needed`` + len(recent watches) items are decoded: enough to
        fill ``needed`` after those watches are filtered out."""
        commands: list[tuple[Arg, ...]] = [
            ("GET", keys.user_key(self._ns, version, user_id)),
            ("LRANGE", keys.hist_key(self._ns, user_id), 0, recent - 1),
        ]
        if with_fresh and self.has_fresh:
            commands.append(("GET", keys.fresh_user_key(self._ns, version, user_id)))
        raw, hist, *fresh = await self._execute_many(commands)
        watched = [h.decode() for h in hist]  # type: ignore[union-attr]
        picks = keys.decode_items(fresh[0]) if fresh and fresh[0] else []  # type: ignore[arg-type]
        return (keys.decode_items(raw, needed + len(watched)) if raw else None), watched, picks  # type: ignore[arg-type]

    async def similar(self, version: str, video_id: str) -> list[tuple[str, float]] | None:
        return await self._get_list(keys.similar_key(self._ns, version, video_id))

    async def fresh(self, version: str, category: str | None) -> list[tuple[str, float]]:
        """Videos added to the version after training (``vidrec fresh``); empty when none were."""
        return await self._get_list(keys.fresh_key(self._ns, version, category)) or []

    async def category_popular(self, version: str, category: str) -> list[tuple[str, float]] | None:
        return await self._get_list(keys.category_popular_key(self._ns, version, category))

    async def add_events(self, events: list[dict[str, str]], hist_max: int, hist_ttl: int, stream_maxlen: int) -> None:
        """Append events to each user's recent-history list and to the events stream (one round trip).

        Each event dict holds strings: user_id, video_id, ts, and optional fields.
        """
        stream = keys.events_stream_key(self._ns)
        commands: list[tuple[str | int, ...]] = []
        for e in events:
            hist = keys.hist_key(self._ns, e["user_id"])
            commands += [
                ("LPUSH", hist, e["video_id"]),
                ("LTRIM", hist, 0, hist_max - 1),
                ("EXPIRE", hist, hist_ttl),
                ("XADD", stream, "MAXLEN", "~", stream_maxlen, "*", *(x for kv in e.items() for x in kv)),
            ]
        await self._execute_many(commands)

    async def popular(self, version: str) -> list[tuple[str, float]]:
        """The version's popular list; ``DataLost`` where Redis no longer has it (every published
        version has one). The in-process copy is only ever replaced by a list read from Redis."""
        items = await self._get_list(keys.popular_key(self._ns, version))
        if items is None:
            raise DataLost(version, "the popular list")
        self.popular_copy = (version, items)
        return items

    async def ping(self) -> str | None:
        """None when Redis answers PING, else why not (the breaker's state included)."""
        try:
            return None if await self._execute("PING") == b"PONG" else "Redis answered PING oddly"
        except RedisUnavailable as exc:
            return str(exc)
