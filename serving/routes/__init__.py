"""The API's routes, one module per resource: ``recommendations`` (users), ``videos`` (similar),
``popular``, ``events``, ``search``, ``health``; ``common`` holds what they share (the live version, the item
list, the one degraded answer)."""

from fastapi import APIRouter, Depends

from serving.auth import require_api_key
from serving.metrics import Metrics
from serving.online import OnlineScorers, SearchIndexes, VideoSummaries
from serving.routes import events, health, popular, recommendations, search, videos
from serving.routes.common import Context
from serving.settings import Settings


def build_router(
    settings: Settings, metrics: Metrics
) -> tuple[APIRouter, APIRouter, recommendations.Recommend, search.Search]:
    """(the /v1 routes behind the API key, the health routes, the recommendations and search
    handlers for the fast paths, ``serving.fastpath``)."""
    ctx = Context(settings, metrics, OnlineScorers(settings.model_root))
    recommend = recommendations.Recommend(ctx)
    v1 = APIRouter(dependencies=[Depends(require_api_key(settings))])
    indexes = SearchIndexes(
        settings.model_root, settings.text_encoder_dir, settings.search_alpha, settings.search_query_cache
    )
    find = search.Search(ctx, indexes)
    for part in (
        recommendations.router(ctx, recommend),
        videos.router(ctx, VideoSummaries(settings.model_root, settings.summary_root)),
        popular.router(ctx),
        events.router(ctx),
        search.router(ctx, find),
    ):
        v1.include_router(part)
    return v1, health.router(ctx), recommend, find
