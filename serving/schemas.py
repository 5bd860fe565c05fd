"""The API's request and response bodies, and the id rules every route checks."""

from typing import Annotated, Literal

from pydantic import BaseModel, Field

ID_REGEX = r"^[A-Za-z0-9_.:\-]{1,128}$"  # recsys.contract.ID_PATTERN (that module needs pandas)
ID_DOC = "1-128 of A-Z a-z 0-9 _ . : -"
RECOMMENDATIONS_ROUTE = "/v1/users/{user_id}/recommendations"
MAX_EXCLUDE_CHARS = 10_000
SEARCH_ROUTE = "/v1/search"
SEARCH_MODES = ("semantic", "lexical", "hybrid")  # recsys.search.MODES (that module needs numpy)
MAX_QUERY_CHARS = 500


class Item(BaseModel):
    video_id: str
    score: float
    reason: Literal["fresh"] | None = None
    """"fresh": a video added since the model was trained (``vidrec fresh``) that matches the user,
    mixed into the answer; absent: the answer's ``source`` ranked it."""


class Recommendations(BaseModel):
    user_id: str
    model_version: str | None
    source: str
    """cache: the user's precomputed list; popular: the fallback list."""
    degraded: bool = False
    """True when Redis could not be read and the answer comes from the in-process copy."""
    items: list[Item]


class Similar(BaseModel):
    video_id: str
    model_version: str | None
    source: str
    """similar: the video's published neighbours; popular: the degraded fallback."""
    degraded: bool = False
    items: list[Item]


class Popular(BaseModel):
    category: str | None
    model_version: str | None
    degraded: bool = False
    items: list[Item]


class RecommendedBy(BaseModel):
    """Which answer the watched video came from: the ``model_version`` and ``source`` of that answer."""

    version: Annotated[str, Field(pattern=ID_REGEX, description="model_version of the answer")]
    source: Literal["cache", "online", "popular", "similar", "fresh"]


class WatchEvent(BaseModel):
    user_id: Annotated[str, Field(pattern=ID_REGEX, description=f"User id: {ID_DOC}")]
    video_id: Annotated[str, Field(pattern=ID_REGEX, description=f"Video id: {ID_DOC}")]
    ts: Annotated[int | None, Field(ge=0, le=32503680000, description="Epoch seconds; default: now")] = None
    watch_seconds: Annotated[float | None, Field(ge=0, le=86400 * 7)] = None
    completion: Annotated[float | None, Field(ge=0, le=1)] = None
    event: Literal["view", "like", "share"] = "view"
    recommended_by: RecommendedBy | None = None
    """Set when the user watched a video the API had recommended: online measurement by version."""


class EventBatch(BaseModel):
    events: Annotated[list[WatchEvent], Field(min_length=1)]


class Accepted(BaseModel):
    accepted: int


class SearchResults(BaseModel):
    query: str
    mode: str = "semantic"
    """semantic (the model's item space), lexical (BM25 over titles, descriptions, tags) or hybrid."""
    user_id: str | None = None
    model_version: str | None
    personalized: bool = False
    """True when the matches were re-ranked by the user's taste (``user_id`` with recent watches)."""
    items: list[Item]


class VideoSummary(BaseModel):
    video_id: str
    model_version: str | None
    timestamps_s: list[float]
    """The summary frames' times in the video, in seconds, in time order."""
    strip_url: str
    """The frames side by side, one JPEG (``GET`` it from this API)."""
