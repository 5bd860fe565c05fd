"""uvicorn's httptools protocol, with one send() per response instead of two.

uvicorn writes a response's status line and headers when the app sends ``http.response.start``
and the body on ``http.response.body``: two system calls, and two wake-ups of the client, for
every small JSON answer. A py-spy profile of the API under ``benchmarks/serving.py`` put 35% of
the worker's time in those two ``transport.write`` calls. Here every write made during one turn of
the event loop is buffered and handed to the socket in one write at the end of the turn, so a
response sent without awaiting anything in between (all of ours) leaves in one segment.

Used by ``vidrec serve`` (``uvicorn.run(http=CoalescingHttpToolsProtocol)``) and by the
benchmark's uvicorn command (``--http serving.http:CoalescingHttpToolsProtocol``). It subclasses
uvicorn's protocol and overrides only ``connection_made``; the pinned uvicorn version is the one
it was checked against (tests/integration/test_http_server.py drives it over real sockets).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class CoalescingTransport:
    """A transport whose writes within one event-loop turn go out as one ``write`` of the real one.

    ``close`` flushes first; ``abort`` drops what is buffered; everything else is the real
    transport's (flow control included: the real transport still pauses and resumes the protocol).
    """

    __slots__ = ("_transport", "_loop", "_pending")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport, self._loop = transport, loop
        self._pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not data:
            return
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(bytes(data))

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if not self._pending:
            return
        data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
        self._pending = []
        if not self._transport.is_closing():
            self._transport.write(data)

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(map(len, self._pending))

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self._pending = []
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol writing through a ``CoalescingTransport``."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]


def uvicorn_options() -> dict[str, Any]:
    """How ``vidrec serve`` (and the tests' real server) runs uvicorn: uvloop, this protocol, no
    access log (one log line per request cost ~10% of the throughput), and no X-Forwarded-For
    rewriting (nothing here uses the client's address; uvicorn copies every request's headers
    into a dict for it)."""
    return {"loop": "uvloop", "http": CoalescingHttpToolsProtocol, "access_log": False, "proxy_headers": False}
