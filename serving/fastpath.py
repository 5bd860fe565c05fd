"""Pure ASGI layers in front of FastAPI: the recommendations and search fast paths and the
request metrics (with the body-size limit)."""

import re
import time
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qsl

from fastapi import HTTPException

from serving.auth import key_accepted
from serving.metrics import Metrics
from serving.routes.common import dumps, json_response
from serving.schemas import (
    ID_REGEX,
    MAX_EXCLUDE_CHARS,
    MAX_QUERY_CHARS,
    RECOMMENDATIONS_ROUTE,
    SEARCH_MODES,
    SEARCH_ROUTE,
)
from serving.settings import Settings

ID_RE = re.compile(ID_REGEX[1:-1])  # for fullmatch


class _PurePath:
    """Pure ASGI, in front of FastAPI: one GET route answered by the route's own handler without
    FastAPI's routing, dependency injection and validation, when ``_accept`` finds the request as
    FastAPI's validation would pass it (the handler's arguments); anything else goes to FastAPI
    unchanged, so errors keep FastAPI's 422/401/403 bodies. It sits outside ObserveMiddleware and
    counts its own requests under the route's template."""

    route = ""

    def __init__(
        self,
        app: Callable[..., Awaitable[None]],
        handler: Callable[..., Awaitable[bytes]],
        settings: Settings,
        metrics: Metrics,
    ) -> None:
        self.app, self.handler, self.max_k, self.metrics = app, handler, settings.max_k, metrics
        self.keys = settings.key_set()

    def _accept(self, scope: dict) -> tuple[object, ...] | None:  # type: ignore[type-arg]
        raise NotImplementedError

    def _params(self, scope: dict) -> dict[str, str] | None:  # type: ignore[type-arg]
        """The query parameters, None when one is repeated (FastAPI's rules then apply) or the API
        key is missing or wrong."""
        params: list[tuple[str, str]] = []
        if qs := scope["query_string"]:
            text = qs.decode("latin-1")
            if "%" in text or "+" in text:
                params = parse_qsl(text, keep_blank_values=True)
            else:  # nothing encoded: the same pairs as parse_qsl, without its per-call cost
                params = [(n, v) for n, _, v in (p.partition("=") for p in text.split("&") if p)]
        out = dict(params)
        if len(out) != len(params):
            return None
        if self.keys:
            given = next((v for n, v in scope["headers"] if n == b"x-api-key"), None)
            if given is None or not key_accepted(given, self.keys):
                return None
        return out

    def _k(self, value: str) -> int | None:
        if not (value.isascii() and value.isdigit() and len(value) <= 6):
            return None
        k = int(value)
        return k if 1 <= k <= self.max_k else None

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:  # type: ignore[type-arg]
        if scope["type"] != "http" or scope["method"] != "GET" or (accepted := self._accept(scope)) is None:
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        try:
            body, status, headers = await self.handler(scope["app"].state.store, *accepted), 200, []
        except HTTPException as exc:
            body, status = dumps({"detail": exc.detail}), exc.status_code
            headers = [(n.lower().encode(), v.encode()) for n, v in (exc.headers or {}).items()]
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", b"%d" % len(body)),
                    *headers,
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
        self.metrics.observe("GET", self.route, status, time.perf_counter() - t0)


class FastPath(_PurePath):
    """``GET /v1/users/{user_id}/recommendations`` with well-formed parameters (about 3x the
    requests per second of the FastAPI route; see ``benchmarks/serving.py``)."""

    PREFIX, SUFFIX = "/v1/users/", "/recommendations"
    route = RECOMMENDATIONS_ROUTE

    def _accept(self, scope: dict) -> tuple[str, int, str] | None:  # type: ignore[type-arg]
        """(user_id, k, exclude) when FastAPI's validation would pass them as they are, else None."""
        path = scope["path"]
        if not (path.startswith(self.PREFIX) and path.endswith(self.SUFFIX)):
            return None
        user_id = path[len(self.PREFIX) : -len(self.SUFFIX)]
        if not ID_RE.fullmatch(user_id) or (params := self._params(scope)) is None:
            return None
        k = self._k(params.get("k", "20"))
        exclude = params.get("exclude", "")
        if k is None or len(exclude) > MAX_EXCLUDE_CHARS:
            return None
        return user_id, k, exclude


class SearchFastPath(_PurePath):
    """``GET /v1/search`` with well-formed parameters (``q`` within its length, ``k`` in range, a
    known ``mode``, a well-formed ``user_id`` or none): a search whose answer is kept
    (``serving.routes.search.Search``) then costs about what a cache-hit recommendation does."""

    route = SEARCH_ROUTE

    def _accept(self, scope: dict) -> tuple[str, int, str | None, str] | None:  # type: ignore[type-arg]
        """(q, k, user_id, mode) when FastAPI's validation would pass them as they are, else None."""
        if scope["path"] != SEARCH_ROUTE or (params := self._params(scope)) is None:
            return None
        q, k, user_id = params.get("q", ""), self._k(params.get("k", "20")), params.get("user_id")
        mode = params.get("mode", "semantic")
        if not 1 <= len(q) <= MAX_QUERY_CHARS or k is None or mode not in SEARCH_MODES:
            return None
        if user_id is not None and not ID_RE.fullmatch(user_id):
            return None
        return q, k, user_id, mode


class ObserveMiddleware:
    """Pure ASGI: request count and latency per route template and status; 413 for oversized bodies."""

    def __init__(self, app: Callable[..., Awaitable[None]], metrics: Metrics, max_body_bytes: int) -> None:
        self.app, self.metrics, self.max_body_bytes = app, metrics, max_body_bytes

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:  # type: ignore[type-arg]
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body_bytes):
            response = json_response({"detail": f"request body over {self.max_body_bytes} bytes"}, 413)
            await response(scope, receive, send)
            self.metrics.observe(scope["method"], "unmatched", 413, 0.0)
            return
        status = 500
        t0 = time.perf_counter()

        async def send_and_watch(message: dict) -> None:  # type: ignore[type-arg]
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_watch)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")  # the template: bounded label set
            self.metrics.observe(scope["method"], route, status, time.perf_counter() - t0)
