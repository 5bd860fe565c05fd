"""``/healthz`` (the process answers), ``/readyz`` (Redis answers and a version is live) and
``/metrics`` (Prometheus)."""

from fastapi import APIRouter, HTTPException, Response

from serving.routes.common import Context, StoreDep
from serving.store import StoreUnavailable


def router(ctx: Context) -> APIRouter:
    r = APIRouter()

    @r.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @r.get("/readyz")
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

    @r.get("/metrics", include_in_schema=False)
    async def prometheus() -> Response:
        body, content_type = ctx.metrics.render()
        return Response(body, media_type=content_type)

    return r
