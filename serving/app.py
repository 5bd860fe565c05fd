"""The HTTP API: recommendations, similar videos and popular lists from Redis, watch events in,
health, readiness and Prometheus metrics.

Fallback chain for ``GET /v1/users/{user_id}/recommendations`` (``source`` in the answer):
1. the user's precomputed list of the live version              -> "cache"
2. no list, but recent watches and the live model loaded
   (``VIDREC_MODEL_ROOT``): the user tower in numpy over them    -> "online"
3. the live version's popular list (unknown or new user)         -> "popular"
4. Redis down or slow: the in-process copy of the popular list   -> "popular", ``degraded: true``
Only when Redis has never answered since start (no copy) is the answer a 503 with the reason.
Videos in the ``exclude`` parameter and videos the user watched recently (``POST /v1/events``)
are filtered from whatever is served. The cache-hit path is one Redis round trip.

Layout: ``schemas`` (bodies), ``routes/`` (one module per resource), ``fastpath`` (the pure-ASGI
recommendations and search paths, the request metrics), ``auth``, ``store`` (the Redis read side behind
``breaker``), ``online`` (numpy scoring for users without a list).
"""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from serving.fastpath import FastPath, ObserveMiddleware, SearchFastPath
from serving.metrics import Metrics
from serving.routes import build_router
from serving.settings import Settings, get_settings
from serving.store import RedisTopKStore, StoreUnavailable

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = RedisTopKStore.from_settings(settings)
        app.state.store = store
        metrics.breaker = store.breaker
        try:  # warm the fallback copy; Redis being down at start is not fatal
            version = await store.live_version()
            if version:
                await store.popular(version)
        except StoreUnavailable as exc:
            log.warning("Redis unavailable at start-up: %s", exc)
        yield
        await store.close()

    app = FastAPI(title="vidrec", version="0.2.0", lifespan=lifespan)
    v1, health, recommend, find = build_router(settings, metrics)
    app.include_router(v1)
    app.include_router(health)
    # Starlette puts the last added outermost: FastPath -> SearchFastPath -> ObserveMiddleware ->
    # FastAPI's routes.
    app.add_middleware(ObserveMiddleware, metrics=metrics, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(SearchFastPath, handler=find, settings=settings, metrics=metrics)
    app.add_middleware(FastPath, handler=recommend, settings=settings, metrics=metrics)
    return app
