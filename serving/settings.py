"""API settings from the environment (prefix ``VIDREC_``), e.g. ``VIDREC_REDIS_URL``."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from cache.client import DEFAULT_REDIS_URL


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VIDREC_", extra="forbid", frozen=True)

    redis_url: str = DEFAULT_REDIS_URL
    """Where published lists live."""
    namespace: str = "demo"
    """Key namespace: vidrec:{namespace}:..., the same as the publish step's."""
    redis_timeout_seconds: float = Field(0.25, gt=0)
    """How long a request waits for a Redis connection, and as long again for the reply: past it
    the request is served from the fallback."""
    redis_connections: int = Field(2, ge=1, le=64)
    """Connections per API process. Requests' commands are pipelined on them (round robin), so a
    few carry tens of thousands of requests per second."""
    redis_max_pending: int = Field(10_000, ge=1)
    """Requests waiting on Redis per process; past it answers degrade at once (memory stays
    bounded while Redis stalls)."""
    redis_breaker_failures: int = Field(5, ge=1)
    """Consecutive Redis calls without an answer (timeouts, lost connections) that open the circuit
    breaker: answers then come from the in-process fallback at once, without calling Redis."""
    redis_breaker_cooldown_seconds: float = Field(1.0, gt=0)
    """How long the breaker stays open; then one probe request tries Redis again."""
    live_version_cache_seconds: float = Field(1.0, ge=0)
    """How long the live-version pointer is cached in process (saves a round trip per request)."""
    model_root: str = ""
    """Folder (or fsspec URL) holding exported model versions (``<workdir>/models``): when set, users without a
    precomputed list but with recent watches are scored online from the live version's model."""
    summary_root: str = ""
    """Folder (or fsspec URL) of the video summary strips (``<workdir>/summaries``); empty: beside
    ``model_root`` (``<model_root>/../summaries``)."""
    text_encoder_dir: str = ""
    """The caption encoder exported to ONNX (``vidrec export-text-encoder`` prints its folder): when
    set with ``model_root``, ``GET /v1/search`` embeds queries with it (no PyTorch in the API)."""
    search_alpha: float = Field(0.8, ge=0, le=1)
    """Search: weight of the pretrained caption similarity against the item tower's (``recsys.search``)."""
    search_user_weight: float = Field(0.3, ge=0, le=10)
    """Search with ``user_id``: weight of the user's standardised score when re-ranking the matches."""
    search_query_cache: int = Field(10_000, ge=0)
    """Search: how many distinct queries' text embeddings, and answers without a user, are kept
    (least recently used out; 0: none)."""
    max_k: int = Field(500, ge=1)
    """Largest k a client may ask for."""
    api_keys: str = ""
    """Comma-separated keys accepted in the X-API-Key header on /v1 routes; empty = no auth.
    A request without the header gets 401, one with an unknown key 403. /healthz, /readyz and
    /metrics stay open (keep them off the public network)."""
    max_events_per_request: int = Field(1000, ge=1)
    max_body_bytes: int = Field(1_000_000, ge=1024)
    """Larger request bodies get 413 before they are read."""
    fresh_per_answer: int = Field(2, ge=0, le=10)
    """At most this many videos added since training (``vidrec fresh``) that match the user are
    mixed into each recommendations answer (spread over it; ``reason: fresh``); 0: none."""
    recent_history: int = Field(200, ge=1)
    """Recent watches kept per user (POST /v1/events) and filtered out of every answer."""
    recent_history_ttl_seconds: int = Field(30 * 86400, ge=60)
    events_stream_maxlen: int = Field(1_000_000, ge=1000)
    """Approximate cap on the events stream the nightly job reads."""

    def key_set(self) -> frozenset[str]:
        return frozenset(k.strip() for k in self.api_keys.split(",") if k.strip())


@lru_cache
def get_settings() -> Settings:
    return Settings()
