"""``GET /v1/popular``: the live version's most watched videos, overall or in a category;
``GET /v1/fresh``: the videos added to it since training (``vidrec fresh``)."""

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Response

from serving.routes.common import Context, StoreDep, json_response, live
from serving.schemas import Popular
from serving.store import RedisTopKStore, StoreUnavailable

CategoryQuery = Annotated[str | None, Query(min_length=1, max_length=200, description="A video category")]


def router(ctx: Context) -> APIRouter:
    r = APIRouter()

    async def answer(store: RedisTopKStore, k: int, category: str | None, source: str, read: Callable) -> Response:  # type: ignore[type-arg]
        """One list of the live version (``read(version)``), or the degraded popular copy."""
        try:
            version = await live(store)
            items = await read(version)
        except StoreUnavailable as exc:
            return json_response({"category": None, **ctx.degraded(store, exc, k, set())})
        if items is None:
            raise HTTPException(404, detail=f"no popular list for category {category!r} in live version {version}")
        return json_response({"category": category, **ctx.served(source, version, items, k, set())})

    @r.get("/v1/popular", response_model=Popular, responses={404: {"description": "Unknown category"}})
    async def popular(
        store: StoreDep, k: Annotated[int, ctx.k_query()] = 20, category: CategoryQuery = None
    ) -> Response:
        read = (lambda v: store.category_popular(v, category)) if category else store.popular
        return await answer(store, k, category, "popular", read)

    @r.get("/v1/fresh", response_model=Popular)
    async def fresh(store: StoreDep, k: Annotated[int, ctx.k_query()] = 20, category: CategoryQuery = None) -> Response:
        """Videos uploaded since the live version was trained (``vidrec fresh``), best first (an
        empty list where none were)."""
        return await answer(store, k, category, "fresh", lambda v: store.fresh(v, category))

    return r
