"""API settings from the environment (prefix ``VIDREC_``), e.g. ``VIDREC_REDIS_URL``."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VIDREC_", extra="forbid", frozen=True)

    redis_url: str = "redis://127.0.0.1:6379/0"
    """Where published lists live."""
    namespace: str = "demo"
    """Key namespace: vidrec:{namespace}:..., the same as the publish step's."""
    redis_timeout_seconds: float = Field(0.25, gt=0)
    """Socket timeout of each Redis call: past it the request is served from the fallback."""
    redis_max_connections: int = Field(64, ge=1)
    """Bound on the connection pool; a request waits at most redis_timeout_seconds for one."""
    live_version_cache_seconds: float = Field(1.0, ge=0)
    """How long the live-version pointer is cached in process (saves a round trip per request)."""
    max_k: int = Field(500, ge=1)


@lru_cache
def get_settings() -> Settings:
    return Settings()
