"""``POST /v1/events``: watch events into the stream and each user's recent history."""

import time

from fastapi import APIRouter, HTTPException

from serving.routes.common import Context, StoreDep
from serving.schemas import Accepted, EventBatch
from serving.store import StoreUnavailable


def router(ctx: Context) -> APIRouter:
    r = APIRouter()
    settings = ctx.settings

    @r.post("/v1/events", status_code=202, response_model=Accepted, responses={413: {"description": "Body too large"}})
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
            ctx.metrics.redis_errors.inc()
            raise HTTPException(503, detail=f"events not stored, Redis is unreachable; retry later ({exc})") from exc
        ctx.metrics.events.inc(len(rows))
        return Accepted(accepted=len(rows))

    return r
