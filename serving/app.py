"""The HTTP API: recommendations from Redis with a fallback chain, health and readiness.

Fallback chain for ``GET /v1/users/{user_id}/recommendations``:
1. the user's precomputed list of the live version            -> source "cache"
2. the live version's popular list (unknown or new user)       -> source "popular"
3. Redis down or slow: the in-process copy of the popular list -> source "popular", degraded
Only when Redis has never answered since start (no copy) is the answer a 503 with the reason.
"""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Path, Query, Request
from pydantic import BaseModel

from serving.settings import Settings, get_settings
from serving.store import RedisTopKStore, StoreUnavailable

log = logging.getLogger(__name__)

ID_REGEX = r"^[A-Za-z0-9_.:\-]{1,128}$"  # recsys.contract.ID_PATTERN


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


def get_store(request: Request) -> RedisTopKStore:
    return request.app.state.store


StoreDep = Annotated[RedisTopKStore, Depends(get_store)]


def _answer(user_id: str, version: str | None, source: str, items, k: int, exclude: set[str], degraded=False):  # type: ignore[no-untyped-def]
    kept = [Item(video_id=v, score=s) for v, s in items if v not in exclude][:k]
    return Recommendations(user_id=user_id, model_version=version, source=source, degraded=degraded, items=kept)


def build_router(settings: Settings) -> APIRouter:
    router = APIRouter(prefix="/v1")

    @router.get("/users/{user_id}/recommendations", response_model=Recommendations)
    async def recommendations(
        store: StoreDep,
        user_id: Annotated[str, Path(pattern=ID_REGEX, description="User id: 1-128 of A-Z a-z 0-9 _ . : -")],
        k: Annotated[int, Query(ge=1, le=settings.max_k, description="Number of videos")] = 20,
        exclude: Annotated[str, Query(max_length=10_000, description="Comma-separated video ids to leave out")] = "",
    ) -> Recommendations:
        excluded = {e for e in exclude.split(",") if e}
        try:
            version = await store.live_version()
            if version is None:
                raise HTTPException(503, detail="no model version is published yet; run the nightly pipeline")
            items = await store.user_list(version, user_id)
            if items is not None:
                return _answer(user_id, version, "cache", items, k, excluded)
            popular = await store.popular(version)
            if popular is not None:
                return _answer(user_id, version, "popular", popular, k, excluded)
        except StoreUnavailable as exc:
            log.warning("redis unavailable, serving the in-process popular copy: %s", exc)
            if store.popular_copy is not None:
                copy_version, copy_items = store.popular_copy
                return _answer(user_id, copy_version, "popular", copy_items, k, excluded, degraded=True)
            raise HTTPException(503, detail="Redis is unreachable and no fallback list is loaded yet") from exc
        raise HTTPException(503, detail=f"live version {version} has no popular list; republish it")

    return router


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = RedisTopKStore.from_settings(settings)
        app.state.store = store
        try:  # warm the fallback copy; Redis being down at start is not fatal
            version = await store.live_version()
            if version:
                await store.popular(version)
        except StoreUnavailable as exc:
            log.warning("Redis unavailable at start-up: %s", exc)
        yield
        await store.close()

    app = FastAPI(title="vidrec", version="0.1.0", lifespan=lifespan)
    app.include_router(build_router(settings))

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz(store: StoreDep) -> dict[str, object]:
        if not await store.ping():
            raise HTTPException(503, detail="Redis does not answer")
        try:
            version = await store.live_version()
        except StoreUnavailable as exc:
            raise HTTPException(503, detail=f"Redis does not answer: {exc}") from exc
        if version is None:
            raise HTTPException(503, detail="no live model version published")
        return {"status": "ready", "model_version": version}

    return app
