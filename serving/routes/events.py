"""``POST /v1/events``: watch events into the stream and each user's recent history."""

import time

from fastapi import APIRouter, HTTPException

from serving.routes.common import Context, StoreDep
from serving.schemas import Accepted, EventBatch, WatchEvent
from serving.store import StoreUnavailable


def stream_fields(event: WatchEvent, now: int) -> dict[str, str]:
    """The event as the stream stores it: flat string fields (``recommended_by`` as
    ``recommended_version`` and ``recommended_source``, columns of the data contract)."""
    fields = event.model_dump(exclude_none=True, exclude={"recommended_by"})
    fields["ts"] = event.ts if event.ts is not None else now
    if event.recommended_by is not None:
        fields["recommended_version"] = event.recommended_by.version
        fields["recommended_source"] = event.recommended_by.source
    return {k: str(v) for k, v in fields.items()}


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
        rows = [stream_fields(e, now) for e in batch.events]
        try:
            await store.add_events(
                rows, settings.recent_history, settings.recent_history_ttl_seconds, settings.events_stream_maxlen
            )
        except StoreUnavailable as exc:
            ctx.metrics.redis_errors.inc()
            raise HTTPException(503, detail=f"events not stored, Redis is unreachable; retry later ({exc})") from exc
        ctx.metrics.events.inc(len(rows))
        for e in batch.events:
            if e.recommended_by is not None:
                ctx.metrics.count_watched(e.recommended_by.version, e.recommended_by.source)
        return Accepted(accepted=len(rows))

    return r
