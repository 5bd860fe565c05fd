"""``GET /v1/videos/{video_id}/similar``: the video's published neighbours."""

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Response

from serving.routes.common import Context, StoreDep, json_response, live
from serving.schemas import ID_DOC, ID_REGEX, Similar
from serving.store import StoreUnavailable


def router(ctx: Context) -> APIRouter:
    r = APIRouter()

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
