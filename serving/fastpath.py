"""Pure ASGI layers in front of FastAPI: the recommendations fast path and the request metrics
(with the body-size limit)."""

import re
import time
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qsl

from fastapi import HTTPException

from serving.auth import key_accepted
from serving.metrics import Metrics
from serving.routes.common import dumps, json_response
from serving.schemas import ID_REGEX, MAX_EXCLUDE_CHARS, RECOMMENDATIONS_ROUTE
from serving.settings import Settings
from serving.store import RedisTopKStore

ID_RE = re.compile(ID_REGEX[1:-1])  # for fullmatch


class FastPath:
    """Pure ASGI, in front of FastAPI: ``GET /v1/users/{user_id}/recommendations`` with well-formed
    parameters is answered here, by the same handler as the FastAPI route, without FastAPI's
    routing, dependency injection and validation (about 3x the requests per second; see
    ``benchmarks/serving.py``). Every request this does not fully accept (a bad id, k out of range,
    repeated or odd parameters, a missing or wrong API key, another route) goes to FastAPI
    unchanged, so errors keep FastAPI's 422/401/403 bodies. It sits outside ObserveMiddleware and
    counts its own requests under the same route template."""

    PREFIX, SUFFIX = "/v1/users/", "/recommendations"

    def __init__(
        self,
        app: Callable[..., Awaitable[None]],
        handler: Callable[[RedisTopKStore, str, int, str], Awaitable[bytes]],
        settings: Settings,
        metrics: Metrics,
    ) -> None:
        self.app, self.handler, self.max_k, self.metrics = app, handler, settings.max_k, metrics
        self.keys = settings.key_set()

    def _accept(self, scope: dict) -> tuple[str, int, str] | None:  # type: ignore[type-arg]
        """(user_id, k, exclude) when FastAPI's validation would pass them as they are, else None."""
        path = scope["path"]
        if not (path.startswith(self.PREFIX) and path.endswith(self.SUFFIX)):
            return None
        user_id = path[len(self.PREFIX) : -len(self.SUFFIX)]
        if not ID_RE.fullmatch(user_id):
            return None
        k, exclude = 20, ""
        if qs := scope["query_string"]:
            text = qs.decode("latin-1")
            if "%" in text or "+" in text:
                params = parse_qsl(text, keep_blank_values=True)
            else:  # nothing encoded: the same pairs as parse_qsl, without its per-call cost
                params = [(n, v) for n, _, v in (p.partition("=") for p in text.split("&") if p)]
            names = [n for n, _ in params]
            if len(set(names)) != len(names):
                return None
            for name, value in params:
                if name == "k":
                    if not (value.isascii() and value.isdigit() and len(value) <= 6):
                        return None
                    k = int(value)
                elif name == "exclude":
                    exclude = value
            if not 1 <= k <= self.max_k or len(exclude) > MAX_EXCLUDE_CHARS:
                return None
        if self.keys:
            given = next((v for n, v in scope["headers"] if n == b"x-api-key"), None)
            if given is None or not key_accepted(given, self.keys):
                return None
        return user_id, k, exclude

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
        self.metrics.observe("GET", RECOMMENDATIONS_ROUTE, status, time.perf_counter() - t0)


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
