"""``GET /v1/search?q=&k=&user_id=&mode=``: videos matching a text query, from the live version's
item space (``recsys.search``); with ``user_id``, re-ranked by the user's recent watches."""

import asyncio
from collections import OrderedDict
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Response

from serving.online import SearchIndexes
from serving.routes.common import Context, StoreDep, dumps, live
from serving.schemas import ID_DOC, ID_REGEX, MAX_QUERY_CHARS, SEARCH_ROUTE, SearchResults
from serving.store import RedisTopKStore, StoreUnavailable

MAX_KEPT_BYTES = 32 << 20
"""At most this many bytes of kept search answers."""


class Search:
    """The JSON answer for validated parameters (the route and ``serving.fastpath.SearchFastPath``
    share it); raises HTTPException (422/503) with the reason.

    Answers without a user are kept per (live version, query, k, mode), the
    ``search_query_cache`` most recently used of them within ``MAX_KEPT_BYTES``: search traffic repeats its head queries, and
    a repeated one is then answered without encoding or scoring (still from the live version: a
    new version misses). Encoding and scoring run in a worker thread, off the event loop."""

    def __init__(self, ctx: Context, indexes: SearchIndexes) -> None:
        self.ctx, self.indexes, self.size = ctx, indexes, ctx.settings.search_query_cache
        self._answers: OrderedDict[tuple[str, str, int, str], tuple[bytes, int]] = OrderedDict()
        self._bytes = 0

    async def __call__(self, store: RedisTopKStore, q: str, k: int, user_id: str | None, mode: str) -> bytes:
        if not q.strip():
            raise HTTPException(422, detail="the query is empty")
        if not self.indexes.configured:
            raise HTTPException(
                503, detail="search is not configured (set VIDREC_MODEL_ROOT and VIDREC_TEXT_ENCODER_DIR)"
            )
        recent: list[str] = []
        try:
            version = await live(store)
            if user_id is not None:
                _, recent, _ = await store.user_view(version, user_id, self.ctx.settings.recent_history, 1)
        except StoreUnavailable as exc:
            raise HTTPException(503, detail=f"Redis is unreachable: {exc}") from exc
        key = (version, q, k, mode)
        if user_id is None and (kept := self._answers.get(key)) is not None:
            self._answers.move_to_end(key)
            self.ctx.metrics.count_served("search", degraded=False, version=version, items=kept[1])
            return kept[0]
        body, n = await self._answer(version, q, k, user_id, recent, mode)
        if user_id is None:
            self._keep(key, body, n)
        self.ctx.metrics.count_served("search", degraded=False, version=version, items=n)
        return body

    def _keep(self, key: tuple[str, str, int, str], body: bytes, n: int) -> None:
        """Keep an answer: the least recently used go past ``search_query_cache`` answers or
        ``MAX_KEPT_BYTES`` in all (10,000 answers of k=500 would hold ~200 MB)."""
        if not self.size or len(body) > MAX_KEPT_BYTES:
            return
        old = self._answers.pop(key, None)
        self._bytes += len(body) - (len(old[0]) if old else 0)
        self._answers[key] = (body, n)
        while len(self._answers) > self.size or self._bytes > MAX_KEPT_BYTES:
            self._bytes -= len(self._answers.popitem(last=False)[1][0])

    async def _answer(
        self, version: str, q: str, k: int, user_id: str | None, recent: list[str], mode: str
    ) -> tuple[bytes, int]:
        index = await asyncio.to_thread(self.indexes.get, version)
        if index is None:
            raise HTTPException(503, detail=f"live version {version} cannot be searched (its model folder is not here)")
        user_scores = None
        if recent and (scorer := await asyncio.to_thread(self.ctx.online.get, version)) is not None:
            vectors, has_history = scorer.vectors([str(user_id)], [recent])
            if has_history[0]:
                vec = vectors[0]
                user_scores = lambda idx: scorer.item_vectors[idx] @ vec  # noqa: E731
        weight = self.ctx.settings.search_user_weight
        try:
            hits = await asyncio.to_thread(index.search, q, k, user_scores, weight, mode=mode)
        except ValueError as exc:  # a version trained before lexical search had no texts
            raise HTTPException(503, detail=f"live version {version} cannot be searched in mode {mode}: {exc}") from exc
        body = {
            "query": q,
            "mode": mode,
            "user_id": user_id,
            "model_version": version,
            "personalized": user_scores is not None,
            "items": [{"video_id": h.video_id, "score": h.score} for h in hits],
        }
        return dumps(body), len(hits)


def router(ctx: Context, answer: Search) -> APIRouter:
    r = APIRouter()

    @r.get(
        SEARCH_ROUTE,
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
        return Response(await answer(store, q, k, user_id, mode), media_type="application/json")

    return r
