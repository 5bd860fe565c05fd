"""``GET /v1/search?q=&k=&user_id=``: videos matching a text query, from the live version's item
space (``recsys.search``); with ``user_id``, re-ranked by the user's recent watches."""

import asyncio
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Response

from serving.online import SearchIndexes
from serving.routes.common import Context, StoreDep, json_response, live
from serving.schemas import ID_DOC, ID_REGEX, SearchResults
from serving.store import StoreUnavailable

MAX_QUERY_CHARS = 500


def router(ctx: Context, indexes: SearchIndexes) -> APIRouter:
    r = APIRouter()

    @r.get(
        "/v1/search",
        response_model=SearchResults,
        responses={
            422: {"description": "An empty or too long query"},
            503: {"description": "Search is not configured, or the live version cannot be searched"},
        },
    )
    async def search(
        store: StoreDep,
        q: Annotated[str, Query(min_length=1, max_length=MAX_QUERY_CHARS, description="The text query")],
        k: Annotated[int, ctx.k_query()] = 20,
        user_id: Annotated[str | None, Query(pattern=ID_REGEX, description=f"Re-rank for this user: {ID_DOC}")] = None,
        mode: Annotated[
            Literal["semantic", "lexical", "hybrid"],
            Query(
                description="semantic: the model's item space; lexical: BM25 over titles, descriptions and tags; "
                "hybrid: both, by reciprocal-rank fusion"
            ),
        ] = "semantic",
    ) -> Response:
        if not q.strip():
            raise HTTPException(422, detail="the query is empty")
        if not indexes.configured:
            raise HTTPException(
                503, detail="search is not configured (set VIDREC_MODEL_ROOT and VIDREC_TEXT_ENCODER_DIR)"
            )
        recent: list[str] = []
        try:
            version = await live(store)
            if user_id is not None:
                _, recent, _ = await store.user_view(version, user_id, ctx.settings.recent_history, 1)
        except StoreUnavailable as exc:
            raise HTTPException(503, detail=f"Redis is unreachable: {exc}") from exc
        index = await asyncio.to_thread(indexes.get, version)
        if index is None:
            raise HTTPException(503, detail=f"live version {version} cannot be searched (its model folder is not here)")
        user_scores = None
        if recent and (scorer := await asyncio.to_thread(ctx.online.get, version)) is not None:
            vectors, has_history = scorer.vectors([str(user_id)], [recent])
            if has_history[0]:
                vec = vectors[0]
                user_scores = lambda idx: scorer.item_vectors[idx] @ vec  # noqa: E731
        try:
            hits = await asyncio.to_thread(index.search, q, k, user_scores, ctx.settings.search_user_weight, mode=mode)
        except ValueError as exc:  # a version trained before lexical search had no texts
            raise HTTPException(503, detail=f"live version {version} cannot be searched in mode {mode}: {exc}") from exc
        ctx.metrics.count_served("search", degraded=False, version=version, items=len(hits))
        return json_response(
            {
                "query": q,
                "mode": mode,
                "user_id": user_id,
                "model_version": version,
                "personalized": user_scores is not None,
                "items": [{"video_id": h.video_id, "score": h.score} for h in hits],
            }
        )

    return r
