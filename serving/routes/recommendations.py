"""``GET /v1/users/{user_id}/recommendations``: the user's list, with the fallback chain of
``serving.app``. ``Recommend`` is also the handler behind ``serving.fastpath.FastPath``."""

import asyncio
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from serving.routes.common import Context, StoreDep, dumps, live, mix_fresh
from serving.schemas import ID_DOC, ID_REGEX, MAX_EXCLUDE_CHARS, RECOMMENDATIONS_ROUTE, Recommendations
from serving.store import RedisTopKStore, StoreUnavailable


class Recommend:
    """The JSON answer for validated parameters; raises HTTPException (4xx/503) with the reason."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def __call__(self, store: RedisTopKStore, user_id: str, k: int, exclude: str) -> bytes:
        ctx = self.ctx
        skip = {e for e in exclude.split(",") if e}
        try:
            version = await live(store)
            most = ctx.settings.fresh_per_answer
            items, recent, fresh = await store.user_view(
                version, user_id, ctx.settings.recent_history, k + len(skip), with_fresh=most > 0
            )
            skip |= set(recent)
            source = "cache"
            if items is None and recent and (scorer := await asyncio.to_thread(ctx.online.get, version)):
                ranked = await asyncio.to_thread(scorer.recommend, user_id, recent, k + len(skip), skip)
                if ranked:
                    source, items = "online", ranked
            if items is None:
                source, items = "popular", await store.popular(version)
        except StoreUnavailable as exc:
            return dumps({"user_id": user_id, "source": "popular", **ctx.degraded(store, exc, k, skip)})
        body = {"user_id": user_id, "source": source, **ctx.served(source, version, items, k, skip)}
        if fresh:
            body["items"] = mixed = mix_fresh(body["items"], fresh, k, skip, most)  # type: ignore[arg-type]
            ctx.metrics.count_items(version, "fresh", sum(1 for i in mixed if i.get("reason") == "fresh"))
        return dumps(body)


def router(ctx: Context, recommend: Recommend) -> APIRouter:
    r = APIRouter()

    @r.get(RECOMMENDATIONS_ROUTE, response_model=Recommendations)
    async def recommendations(
        store: StoreDep,
        user_id: Annotated[str, Path(pattern=ID_REGEX, description=f"User id: {ID_DOC}")],
        k: Annotated[int, ctx.k_query()] = 20,
        exclude: Annotated[
            str, Query(max_length=MAX_EXCLUDE_CHARS, description="Comma-separated video ids to leave out")
        ] = "",
    ) -> Response:
        return Response(await recommend(store, user_id, k, exclude), media_type="application/json")

    return r
