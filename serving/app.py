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
"""

import asyncio
import logging
import re
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Literal
from urllib.parse import parse_qsl

import orjson
from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Path, Query, Request, Response
from pydantic import BaseModel, Field

from serving.breaker import CircuitOpen
from serving.metrics import Metrics
from serving.online import OnlineScorers
from serving.settings import Settings, get_settings
from serving.store import RedisTopKStore, StoreUnavailable

log = logging.getLogger(__name__)

ID_REGEX = r"^[A-Za-z0-9_.:\-]{1,128}$"  # recsys.contract.ID_PATTERN
ID_RE = re.compile(ID_REGEX[1:-1])  # for fullmatch
ID_DOC = "1-128 of A-Z a-z 0-9 _ . : -"
RECOMMENDATIONS_ROUTE = "/v1/users/{user_id}/recommendations"
MAX_EXCLUDE_CHARS = 10_000


class Item(BaseModel):
    video_id: str
    score: float


class Recommendations(BaseModel):
    user_id: str
    model_version: str | None
    source: str
    """cache: the user's precomputed list; popular: the fallback list."""
    degraded: bool = False
    """True when Redis could not be read and the answer comes from the in-process copy."""
    items: list[Item]


class Similar(BaseModel):
    video_id: str
    model_version: str | None
    source: str
    """similar: the video's published neighbours; popular: the degraded fallback."""
    degraded: bool = False
    items: list[Item]


class Popular(BaseModel):
    category: str | None
    model_version: str | None
    degraded: bool = False
    items: list[Item]


class WatchEvent(BaseModel):
    user_id: Annotated[str, Field(pattern=ID_REGEX, description=f"User id: {ID_DOC}")]
    video_id: Annotated[str, Field(pattern=ID_REGEX, description=f"Video id: {ID_DOC}")]
    ts: Annotated[int | None, Field(ge=0, le=32503680000, description="Epoch seconds; default: now")] = None
    watch_seconds: Annotated[float | None, Field(ge=0, le=86400 * 7)] = None
    completion: Annotated[float | None, Field(ge=0, le=1)] = None
    event: Literal["view", "like", "share"] = "view"


class EventBatch(BaseModel):
    events: Annotated[list[WatchEvent], Field(min_length=1)]


class Accepted(BaseModel):
    accepted: int


def get_store(request: Request) -> RedisTopKStore:
    return request.app.state.store


StoreDep = Annotated[RedisTopKStore, Depends(get_store)]


def _items(items: list[tuple[str, float]], k: int, skip: set[str]) -> list[dict[str, object]]:
    if not skip:
        return [{"video_id": v, "score": s} for v, s in items[:k]]
    out: list[dict[str, object]] = []
    for v, s in items:
        if v not in skip:
            out.append({"video_id": v, "score": s})
            if len(out) == k:
                break
    return out


def _dumps(body: dict[str, object]) -> bytes:
    return orjson.dumps(body)


def _json(body: dict[str, object], status: int = 200) -> Response:
    """A JSON answer built directly: the route's response_model documents it, nothing re-validates it."""
    return Response(_dumps(body), status_code=status, media_type="application/json")


class FastPath:
    """Pure ASGI, in front of FastAPI: ``GET /v1/users/{user_id}/recommendations`` with well-formed
    parameters is answered here, by the same handler as the FastAPI route, without FastAPI's
    routing, dependency injection and validation (about 3x the requests per second; see
    ``benchmarks/serving.py``). Every request this does not fully accept (a bad id, k out of range,
    repeated or odd parameters, a missing or wrong API key, another route) goes to FastAPI
    unchanged, so errors keep FastAPI's 422/401/403 bodies. It sits outside ObserveMiddleware and
    counts its own requests under the same route template."""

    PREFIX, SUFFIX = "/v1/users/", "/recommendations"

    def __init__(
        self,
        app: Callable[..., Awaitable[None]],
        handler: Callable[[RedisTopKStore, str, int, str], Awaitable[bytes]],
        settings: Settings,
        metrics: Metrics,
    ) -> None:
        self.app, self.handler, self.max_k, self.metrics = app, handler, settings.max_k, metrics
        self.keys = settings.key_set()

    def _accept(self, scope: dict) -> tuple[str, int, str] | None:  # type: ignore[type-arg]
        """(user_id, k, exclude) when FastAPI's validation would pass them as they are, else None."""
        path = scope["path"]
        if not (path.startswith(self.PREFIX) and path.endswith(self.SUFFIX)):
            return None
        user_id = path[len(self.PREFIX) : -len(self.SUFFIX)]
        if not ID_RE.fullmatch(user_id):
            return None
        k, exclude = 20, ""
        if qs := scope["query_string"]:
            text = qs.decode("latin-1")
            if "%" in text or "+" in text:
                params = parse_qsl(text, keep_blank_values=True)
            else:  # nothing encoded: the same pairs as parse_qsl, without its per-call cost
                params = [(n, v) for n, _, v in (p.partition("=") for p in text.split("&") if p)]
            names = [n for n, _ in params]
            if len(set(names)) != len(names):
                return None
            for name, value in params:
                if name == "k":
                    if not (value.isascii() and value.isdigit() and len(value) <= 6):
                        return None
                    k = int(value)
                elif name == "exclude":
                    exclude = value
            if not 1 <= k <= self.max_k or len(exclude) > MAX_EXCLUDE_CHARS:
                return None
        if self.keys:
            given = next((v for n, v in scope["headers"] if n == b"x-api-key"), None)
            if given is None or not key_accepted(given, self.keys):
                return None
        return user_id, k, exclude

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:  # type: ignore[type-arg]
        if scope["type"] != "http" or scope["method"] != "GET" or (accepted := self._accept(scope)) is None:
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        try:
            body, status, headers = await self.handler(scope["app"].state.store, *accepted), 200, []
        except HTTPException as exc:
            body, status = _dumps({"detail": exc.detail}), exc.status_code
            headers = [(n.lower().encode(), v.encode()) for n, v in (exc.headers or {}).items()]
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", b"%d" % len(body)),
                    *headers,
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
        self.metrics.observe("GET", RECOMMENDATIONS_ROUTE, status, time.perf_counter() - t0)


class ObserveMiddleware:
    """Pure ASGI: request count and latency per route template and status; 413 for oversized bodies."""

    def __init__(self, app: Callable[..., Awaitable[None]], metrics: Metrics, max_body_bytes: int) -> None:
        self.app, self.metrics, self.max_body_bytes = app, metrics, max_body_bytes

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:  # type: ignore[type-arg]
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body_bytes):
            response = _json({"detail": f"request body over {self.max_body_bytes} bytes"}, 413)
            await response(scope, receive, send)
            self.metrics.observe(scope["method"], "unmatched", 413, 0.0)
            return
        status = 500
        t0 = time.perf_counter()

        async def send_and_watch(message: dict) -> None:  # type: ignore[type-arg]
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_watch)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")  # the template: bounded label set
            self.metrics.observe(scope["method"], route, status, time.perf_counter() - t0)


def key_accepted(given: bytes, accepted: frozenset[str]) -> bool:
    """Constant-time comparison of the raw header value with each accepted key (as bytes, so a
    non-ASCII header is a plain mismatch, not the TypeError str comparison raises)."""
    return any(secrets.compare_digest(given, k.encode()) for k in accepted)


def require_api_key(settings: Settings) -> Callable[..., Awaitable[None]]:
    accepted = settings.key_set()

    async def check(x_api_key: Annotated[str | None, Header(description="API key (when auth is on)")] = None) -> None:
        if not accepted:
            return
        if x_api_key is None:
            raise HTTPException(401, detail="missing X-API-Key header", headers={"WWW-Authenticate": "X-API-Key"})
        if not key_accepted(x_api_key.encode("latin-1"), accepted):  # Starlette decoded it as latin-1
            raise HTTPException(403, detail="X-API-Key not accepted")

    return check


def build_router(
    settings: Settings, metrics: Metrics
) -> tuple[APIRouter, Callable[[RedisTopKStore, str, int, str], Awaitable[bytes]]]:
    """The /v1 routes, and the handler behind the recommendations route (for ``FastPath``)."""
    online = OnlineScorers(settings.model_root)
    router = APIRouter(dependencies=[Depends(require_api_key(settings))])
    k_query = Query(ge=1, le=settings.max_k, description="Number of videos")

    def degraded_popular(store: RedisTopKStore, exc: StoreUnavailable) -> tuple[str, list[tuple[str, float]]]:
        if not isinstance(exc, CircuitOpen):  # open: Redis was not called, nothing new to log
            log.warning("Redis cannot answer, serving the in-process popular copy: %s", exc)
            metrics.redis_errors.inc()
        if store.popular_copy is None:
            raise HTTPException(
                503, detail=f"Redis is unreachable or lost its data, and no fallback list is loaded yet: {exc}"
            ) from exc
        return store.popular_copy

    async def live(store: RedisTopKStore) -> str:
        version = await store.live_version()
        if version is None:
            raise HTTPException(503, detail="no model version is published yet; run the nightly pipeline")
        return version

    async def recommend(store: RedisTopKStore, user_id: str, k: int, exclude: str) -> bytes:
        """The JSON answer for validated parameters; raises HTTPException (4xx/503) with the reason."""
        skip = {e for e in exclude.split(",") if e}
        try:
            version = await live(store)
            items, recent_order = await store.user_view(version, user_id, settings.recent_history, k + len(skip))
            recent = set(recent_order)
            skip |= recent
            source = "cache"
            if items is None and recent and (scorer := await asyncio.to_thread(online.get, version)) is not None:
                ranked = await asyncio.to_thread(scorer.recommend, user_id, recent_order, k + len(skip), skip)
                if ranked:
                    source, items = "online", ranked
            if items is None:
                source, items = "popular", await store.popular(version)
        except StoreUnavailable as exc:
            version, items = degraded_popular(store, exc)
            metrics.count_served("popular", degraded=True)
            return _dumps(
                {"user_id": user_id, "model_version": version, "source": "popular", "degraded": True,
                 "items": _items(items, k, skip)}
            )  # fmt: skip
        metrics.count_served(source, degraded=False)
        return _dumps(
            {"user_id": user_id, "model_version": version, "source": source, "degraded": False,
             "items": _items(items, k, skip)}
        )  # fmt: skip

    @router.get(RECOMMENDATIONS_ROUTE, response_model=Recommendations)
    async def recommendations(
        store: StoreDep,
        user_id: Annotated[str, Path(pattern=ID_REGEX, description=f"User id: {ID_DOC}")],
        k: Annotated[int, k_query] = 20,
        exclude: Annotated[
            str, Query(max_length=MAX_EXCLUDE_CHARS, description="Comma-separated video ids to leave out")
        ] = "",
    ) -> Response:
        return Response(await recommend(store, user_id, k, exclude), media_type="application/json")

    @router.get(
        "/v1/videos/{video_id}/similar",
        response_model=Similar,
        responses={404: {"description": "The video is not in the live version"}},
    )
    async def similar(
        store: StoreDep,
        video_id: Annotated[str, Path(pattern=ID_REGEX, description=f"Video id: {ID_DOC}")],
        k: Annotated[int, k_query] = 20,
    ) -> Response:
        try:
            version = await live(store)
            items = await store.similar(version, video_id)
            if items is None:  # not in the version, or Redis lost the version's lists (DataLost)
                await store.popular(version)
        except StoreUnavailable as exc:
            version, items = degraded_popular(store, exc)
            metrics.count_served("popular", degraded=True)
            return _json(
                {"video_id": video_id, "model_version": version, "source": "popular", "degraded": True,
                 "items": _items(items, k, {video_id})}
            )  # fmt: skip
        if items is None:
            raise HTTPException(404, detail=f"video {video_id} is not in live version {version}")
        metrics.count_served("similar", degraded=False)
        return _json(
            {"video_id": video_id, "model_version": version, "source": "similar", "degraded": False,
             "items": _items(items, k, set())}
        )  # fmt: skip

    @router.get("/v1/popular", response_model=Popular, responses={404: {"description": "Unknown category"}})
    async def popular(
        store: StoreDep,
        k: Annotated[int, k_query] = 20,
        category: Annotated[str | None, Query(min_length=1, max_length=200, description="A video category")] = None,
    ) -> Response:
        try:
            version = await live(store)
            items = await (store.category_popular(version, category) if category else store.popular(version))
        except StoreUnavailable as exc:
            version, items = degraded_popular(store, exc)
            metrics.count_served("popular", degraded=True)
            return _json(
                {"category": None, "model_version": version, "degraded": True, "items": _items(items, k, set())}
            )
        if items is None:
            raise HTTPException(404, detail=f"no popular list for category {category!r} in live version {version}")
        metrics.count_served("popular", degraded=False)
        return _json(
            {"category": category, "model_version": version, "degraded": False, "items": _items(items, k, set())}
        )

    @router.post(
        "/v1/events", status_code=202, response_model=Accepted, responses={413: {"description": "Body too large"}}
    )
    async def post_events(store: StoreDep, batch: EventBatch) -> Accepted:
        if len(batch.events) > settings.max_events_per_request:
            raise HTTPException(
                413, detail=f"{len(batch.events)} events; at most {settings.max_events_per_request} per request"
            )
        now = int(time.time())
        rows = [
            {k: str(v) for k, v in {**e.model_dump(exclude_none=True), "ts": e.ts if e.ts is not None else now}.items()}
            for e in batch.events
        ]
        try:
            await store.add_events(
                rows, settings.recent_history, settings.recent_history_ttl_seconds, settings.events_stream_maxlen
            )
        except StoreUnavailable as exc:
            metrics.redis_errors.inc()
            raise HTTPException(503, detail=f"events not stored, Redis is unreachable; retry later ({exc})") from exc
        metrics.events.inc(len(rows))
        return Accepted(accepted=len(rows))

    return router, recommend


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
    router, recommend = build_router(settings, metrics)
    app.include_router(router)

    # Starlette puts the last added outermost: FastPath -> ObserveMiddleware -> FastAPI's routes.
    app.add_middleware(ObserveMiddleware, metrics=metrics, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(FastPath, handler=recommend, settings=settings, metrics=metrics)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz(store: StoreDep) -> dict[str, object]:
        if (why := await store.ping()) is not None:
            raise HTTPException(503, detail=f"Redis does not answer: {why}")
        try:
            version = await store.live_version()
        except StoreUnavailable as exc:
            raise HTTPException(503, detail=str(exc)) from exc
        if version is None:
            raise HTTPException(503, detail="no live model version published")
        return {"status": "ready", "model_version": version}

    @app.get("/metrics", include_in_schema=False)
    async def prometheus() -> Response:
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    return app
