"""``GET /v1/popular``: the live version's most watched videos, overall or in a category;
``GET /v1/fresh``: the videos added to it since training (``vidrec fresh``)."""

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Response

from serving.routes.common import Context, StoreDep, json_response, live
from serving.schemas import Popular
from serving.store import StoreUnavailable


def router(ctx: Context) -> APIRouter:
    r = APIRouter()

    @r.get("/v1/popular", response_model=Popular, responses={404: {"description": "Unknown category"}})
    async def popular(
        store: StoreDep,
        k: Annotated[int, ctx.k_query()] = 20,
        category: Annotated[str | None, Query(min_length=1, max_length=200, description="A video category")] = None,
    ) -> Response:
        try:
            version = await live(store)
            items = await (store.category_popular(version, category) if category else store.popular(version))
        except StoreUnavailable as exc:
            return json_response({"category": None, **ctx.degraded(store, exc, k, set())})
        if items is None:
            raise HTTPException(404, detail=f"no popular list for category {category!r} in live version {version}")
        return json_response({"category": category, **ctx.served("popular", version, items, k, set())})

    @r.get("/v1/fresh", response_model=Popular)
    async def fresh(
        store: StoreDep,
        k: Annotated[int, ctx.k_query()] = 20,
        category: Annotated[str | None, Query(min_length=1, max_length=200, description="A video category")] = None,
    ) -> Response:
        """Videos uploaded since the live version was trained (``vidrec fresh``), best first."""
        try:
            version = await live(store)
            items = await store.fresh(version, category)
        except StoreUnavailable as exc:
            return json_response({"category": None, **ctx.degraded(store, exc, k, set())})
        return json_response({"category": category, **ctx.served("fresh", version, items, k, set())})

    return r
