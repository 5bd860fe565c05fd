"""API keys: ``X-API-Key`` checked in constant time against the configured keys (none: open)."""

import secrets
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Header, HTTPException

from serving.settings import Settings


def key_accepted(given: bytes, accepted: frozenset[str]) -> bool:
    """Constant-time comparison of the raw header value with each accepted key (as bytes, so a
    non-ASCII header is a plain mismatch, not the TypeError str comparison raises)."""
    return any(secrets.compare_digest(given, k.encode()) for k in accepted)


def require_api_key(settings: Settings) -> Callable[..., Awaitable[None]]:
    accepted = settings.key_set()

    async def check(x_api_key: Annotated[str | None, Header(description="API key (when auth is on)")] = None) -> None:
        if not accepted:
            return
        if x_api_key is None:
            raise HTTPException(401, detail="missing X-API-Key header", headers={"WWW-Authenticate": "X-API-Key"})
        if not key_accepted(x_api_key.encode("latin-1"), accepted):  # Starlette decoded it as latin-1
            raise HTTPException(403, detail="X-API-Key not accepted")

    return check
