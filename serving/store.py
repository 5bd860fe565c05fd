"""Read side of the published lists in Redis (async), with an in-process copy of the popular list.

Every method either answers from Redis or raises ``StoreUnavailable``; the routes turn that into
a degraded answer from the in-process copy. No TensorFlow, no numpy: one round trip per hit.
"""

from __future__ import annotations

import logging
import time

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from recsys import keys

log = logging.getLogger(__name__)


class StoreUnavailable(Exception):
    """Redis did not answer in time (or at all)."""


class RedisTopKStore:
    def __init__(self, client: aioredis.Redis, namespace: str, live_cache_seconds: float) -> None:
        self._client = client
        self._ns = namespace
        self._live_cache_seconds = live_cache_seconds
        self._live: tuple[float, str | None] = (0.0, None)
        # Last popular list read from Redis: (version, items). Served when Redis is down.
        self.popular_copy: tuple[str, list[tuple[str, float]]] | None = None

    @classmethod
    def from_settings(cls, settings) -> RedisTopKStore:  # type: ignore[no-untyped-def]
        pool = aioredis.BlockingConnectionPool.from_url(
            settings.redis_url,
            max_connections=settings.redis_max_connections,
            timeout=settings.redis_timeout_seconds,
            socket_timeout=settings.redis_timeout_seconds,
            socket_connect_timeout=settings.redis_timeout_seconds,
        )
        return cls(aioredis.Redis(connection_pool=pool), settings.namespace, settings.live_version_cache_seconds)

    async def close(self) -> None:
        await self._client.aclose()

    async def live_version(self) -> str | None:
        fetched_at, version = self._live
        now = time.monotonic()
        if version is not None and now - fetched_at < self._live_cache_seconds:
            return version
        try:
            raw = await self._client.get(keys.live_key(self._ns))
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(str(exc)) from exc
        version = raw.decode() if raw else None
        self._live = (now, version)
        return version

    async def _get_list(self, key: str) -> list[tuple[str, float]] | None:
        try:
            raw = await self._client.get(key)
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(str(exc)) from exc
        return keys.decode_items(raw) if raw else None

    async def user_list(self, version: str, user_id: str) -> list[tuple[str, float]] | None:
        return await self._get_list(keys.user_key(self._ns, version, user_id))

    async def user_view(
        self, version: str, user_id: str, recent: int
    ) -> tuple[list[tuple[str, float]] | None, list[str]]:
        """(the user's precomputed list or None, videos they watched recently, newest first), in one round trip."""
        try:
            pipe = self._client.pipeline(transaction=False)
            pipe.get(keys.user_key(self._ns, version, user_id))
            pipe.lrange(keys.hist_key(self._ns, user_id), 0, recent - 1)
            raw, hist = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(str(exc)) from exc
        return (keys.decode_items(raw) if raw else None), [h.decode() for h in hist]

    async def similar(self, version: str, video_id: str) -> list[tuple[str, float]] | None:
        return await self._get_list(keys.similar_key(self._ns, version, video_id))

    async def category_popular(self, version: str, category: str) -> list[tuple[str, float]] | None:
        return await self._get_list(keys.category_popular_key(self._ns, version, category))

    async def add_events(self, events: list[dict[str, str]], hist_max: int, hist_ttl: int, stream_maxlen: int) -> None:
        """Append events to each user's recent-history list and to the events stream (one round trip).

        Each event dict holds strings: user_id, video_id, ts, and optional fields.
        """
        try:
            pipe = self._client.pipeline(transaction=False)
            for e in events:
                hist = keys.hist_key(self._ns, e["user_id"])
                pipe.lpush(hist, e["video_id"])
                pipe.ltrim(hist, 0, hist_max - 1)
                pipe.expire(hist, hist_ttl)
                pipe.xadd(keys.events_stream_key(self._ns), e, maxlen=stream_maxlen, approximate=True)
            await pipe.execute()
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(str(exc)) from exc

    async def popular(self, version: str) -> list[tuple[str, float]] | None:
        items = await self._get_list(keys.popular_key(self._ns, version))
        if items is not None:
            self.popular_copy = (version, items)
        return items

    async def ping(self) -> bool:
        try:
            return bool(await self._client.ping())
        except (RedisError, OSError):
            return False
