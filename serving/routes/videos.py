"""``GET /v1/videos/{video_id}/similar``: the video's published neighbours;
``GET /v1/videos/{video_id}/summary`` (and ``summary.jpg``): its summary frames."""

import asyncio
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Response

from serving.online import VideoSummaries
from serving.routes.common import Context, StoreDep, json_response, live
from serving.schemas import ID_DOC, ID_REGEX, Similar, VideoSummary
from serving.store import StoreUnavailable


def router(ctx: Context, summaries: VideoSummaries) -> APIRouter:
    r = APIRouter()
    VideoId = Annotated[str, Path(pattern=ID_REGEX, description=f"Video id: {ID_DOC}")]

    async def summary_of(store: StoreDep, video_id: str) -> tuple[str, dict]:  # type: ignore[type-arg]
        if summaries.root is None:
            raise HTTPException(503, detail="video summaries are not configured (set VIDREC_MODEL_ROOT)")
        try:
            version = await live(store)
        except StoreUnavailable as exc:
            raise HTTPException(503, detail=f"Redis is unreachable: {exc}") from exc
        known = await asyncio.to_thread(summaries.get, version)
        if known is None:
            raise HTTPException(503, detail=f"live version {version} has no summaries here")
        if video_id not in known:
            raise HTTPException(404, detail=f"video {video_id} has no summary in live version {version}")
        return version, known[video_id]

    @r.get(
        "/v1/videos/{video_id}/summary",
        response_model=VideoSummary,
        responses={404: {"description": "The video has no summary in the live version"}},
    )
    async def summary(store: StoreDep, video_id: VideoId) -> Response:
        version, found = await summary_of(store, video_id)
        return json_response(
            {
                "video_id": video_id,
                "model_version": version,
                "timestamps_s": found["timestamps_s"],
                "strip_url": f"/v1/videos/{video_id}/summary.jpg",
            }
        )

    @r.get(
        "/v1/videos/{video_id}/summary.jpg",
        response_class=Response,
        responses={200: {"content": {"image/jpeg": {}}}, 404: {"description": "No summary strip"}},
    )
    async def summary_strip(store: StoreDep, video_id: VideoId) -> Response:
        _, found = await summary_of(store, video_id)
        data = await asyncio.to_thread(summaries.strip, str(found["strip"]))
        if data is None:
            raise HTTPException(404, detail=f"the summary strip of video {video_id} is not there")
        return Response(data, media_type="image/jpeg")

    @r.get(
        "/v1/videos/{video_id}/similar",
        response_model=Similar,
        responses={404: {"description": "The video is not in the live version"}},
    )
    async def similar(
        store: StoreDep,
        video_id: Annotated[str, Path(pattern=ID_REGEX, description=f"Video id: {ID_DOC}")],
        k: Annotated[int, ctx.k_query()] = 20,
    ) -> Response:
        try:
            version = await live(store)
            items = await store.similar(version, video_id)
            if items is None:  # not in the version, or Redis lost the version's lists (DataLost)
                await store.popular(version)
        except StoreUnavailable as exc:
            return json_response({"video_id": video_id, "source": "popular", **ctx.degraded(store, exc, k, {video_id})})
        if items is None:
            raise HTTPException(404, detail=f"video {video_id} is not in live version {version}")
        return json_response(
            {"video_id": video_id, "source": "similar", **ctx.served("similar", version, items, k, set())}
        )

    return r
