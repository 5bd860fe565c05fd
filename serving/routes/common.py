"""What every route shares: the store from the app state, the live version, the item list as it
is answered, and the one degraded answer (the in-process popular copy) for a Redis that cannot."""

import logging
from dataclasses import dataclass
from typing import Annotated

import orjson
from fastapi import Depends, HTTPException, Query, Request, Response

from serving.breaker import CircuitOpen
from serving.metrics import Metrics
from serving.online import OnlineScorers
from serving.settings import Settings
from serving.store import RedisTopKStore, StoreUnavailable

log = logging.getLogger(__name__)


def get_store(request: Request) -> RedisTopKStore:
    return request.app.state.store


StoreDep = Annotated[RedisTopKStore, Depends(get_store)]


@dataclass
class Context:
    """The settings, metrics and online scorers the routes answer with."""

    settings: Settings
    metrics: Metrics
    online: OnlineScorers

    def k_query(self) -> object:
        return Query(ge=1, le=self.settings.max_k, description="Number of videos")

    def degraded(self, store: RedisTopKStore, exc: StoreUnavailable, k: int, skip: set[str]) -> dict[str, object]:
        """The body fields of a degraded answer: the in-process popular copy (a 503 when there is
        none yet), counted as served degraded."""
        if not isinstance(exc, CircuitOpen):  # open: Redis was not called, nothing new to log
            log.warning("Redis cannot answer, serving the in-process popular copy: %s", exc)
            self.metrics.redis_errors.inc()
        if store.popular_copy is None:
            raise HTTPException(
                503, detail=f"Redis is unreachable or lost its data, and no fallback list is loaded yet: {exc}"
            ) from exc
        version, items = store.popular_copy
        answered = items_view(items, k, skip)
        self.metrics.count_served("popular", degraded=True, version=version, items=len(answered))
        return {"model_version": version, "degraded": True, "items": answered}

    def served(self, source: str, version: str, items: list[tuple[str, float]], k: int, skip: set[str]) -> dict:  # type: ignore[type-arg]
        """The body fields of a normal answer, counted by its source."""
        answered = items_view(items, k, skip)
        self.metrics.count_served(source, degraded=False, version=version, items=len(answered))
        return {"model_version": version, "degraded": False, "items": answered}


async def live(store: RedisTopKStore) -> str:
    version = await store.live_version()
    if version is None:
        raise HTTPException(503, detail="no model version is published yet; run the nightly pipeline")
    return version


def mix_fresh(
    answer: list[dict[str, object]], fresh: list[tuple[str, float]], k: int, skip: set[str], most: int
) -> list[dict[str, object]]:
    """``answer`` with up to ``most`` of ``fresh`` (not skipped, not already in it) spread over
    it, at places (j + 1) * k // (most + 1), each marked ``reason: fresh``; still ``k`` long."""
    listed = {str(i["video_id"]) for i in answer}
    picks = [{"video_id": v, "score": s, "reason": "fresh"} for v, s in fresh if v not in skip and v not in listed][
        :most
    ]
    if not picks:
        return answer
    out = list(answer)
    for j, pick in enumerate(picks):
        out.insert(min((j + 1) * k // (len(picks) + 1), len(out)), pick)
    return out[:k]


def items_view(items: list[tuple[str, float]], k: int, skip: set[str]) -> list[dict[str, object]]:
    """The first ``k`` items not in ``skip``, as the JSON answer lists them."""
    if not skip:
        return [{"video_id": v, "score": s} for v, s in items[:k]]
    out: list[dict[str, object]] = []
    for v, s in items:
        if v not in skip:
            out.append({"video_id": v, "score": s})
            if len(out) == k:
                break
    return out


def dumps(body: dict[str, object]) -> bytes:
    return orjson.dumps(body)


def json_response(body: dict[str, object], status: int = 200) -> Response:
    """A JSON answer built directly: the route's response_model documents it, nothing re-validates it."""
    return Response(dumps(body), status_code=status, media_type="application/json")
