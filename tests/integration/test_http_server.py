"""The API behind uvicorn with ``serving.http.CoalescingHttpToolsProtocol``, over raw sockets:
what HTTP/1.1 clients rely on must survive the one-write-per-turn transport."""

from __future__ import annotations

import json
import socket

import pytest

from cache.writer import TopK, publish_version
from serving.app import create_app
from serving.settings import Settings
from tests.conftest import ServerThread


@pytest.fixture
def server(redis_url, redis_client, namespace):
    publish_version(redis_client, namespace, "ver1", TopK(["u1"], [["v3", "v1"]], [[0.9, 0.5]]), (["p1"], [1.0]), 600)
    with ServerThread(create_app(Settings(redis_url=redis_url, namespace=namespace))) as srv:
        yield srv


def read_response(f) -> tuple[int, dict[str, str], bytes]:  # type: ignore[no-untyped-def]
    status = int(f.readline().split()[1])
    headers = {}
    while (line := f.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, f.read(int(headers["content-length"]))


def test_keep_alive_and_pipelined_requests_in_order(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s, s.makefile("rb") as f:
        for _ in range(3):  # one request at a time on the same connection
            s.sendall(b"GET /v1/users/u1/recommendations?k=1 HTTP/1.1\r\nHost: x\r\n\r\n")
            status, _, body = read_response(f)
            assert status == 200 and json.loads(body)["items"][0]["video_id"] == "v3"
        # three requests in one segment (fast path, FastAPI 404 path, fast path): answers in order
        s.sendall(
            b"GET /v1/users/u1/recommendations?k=2 HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /v1/videos/nope/similar HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /v1/users/u1/recommendations?k=1 HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        answers = [read_response(f) for _ in range(3)]
        assert [a[0] for a in answers] == [200, 404, 200]
        assert len(json.loads(answers[0][2])["items"]) == 2 and len(json.loads(answers[2][2])["items"]) == 1


def test_post_body_and_connection_close(server):
    events = json.dumps({"events": [{"user_id": "u9", "video_id": "v1", "ts": 1767225600}]}).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s, s.makefile("rb") as f:
        s.sendall(
            b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%b" % (len(events), events)
        )
        status, _, body = read_response(f)
        assert status == 202, body
        s.sendall(b"GET /v1/users/u9/recommendations HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        status, headers, body = read_response(f)
        assert status == 200 and headers.get("connection") == "close"
        assert "v1" not in [i["video_id"] for i in json.loads(body)["items"]]  # just watched: filtered
        assert f.read() == b""  # the server closed the connection after the answer (flushed first)


def test_bad_request_line_gets_400_and_close(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s, s.makefile("rb") as f:
        s.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        assert int(f.readline().split()[1]) == 400
        f.read()  # then end of stream: uvicorn closes; nothing hangs


def test_one_write_per_response():
    """The transport hands everything written in one loop turn to the socket in one write."""
    import asyncio

    from serving.http import CoalescingTransport

    class Recorder:
        def __init__(self) -> None:
            self.writes: list[bytes] = []
            self.closed = False

        def write(self, data: bytes) -> None:
            self.writes.append(data)

        def is_closing(self) -> bool:
            return self.closed

        def close(self) -> None:
            self.closed = True

        def get_write_buffer_size(self) -> int:
            return 0

    async def scenario() -> Recorder:
        real = Recorder()
        t = CoalescingTransport(real, asyncio.get_running_loop())  # type: ignore[arg-type]
        t.write(b"HTTP/1.1 200 OK\r\n\r\n")
        t.write(b"body")
        assert real.writes == [] and t.get_write_buffer_size() == 23
        await asyncio.sleep(0)  # end of the turn
        t.write(b"second")
        t.close()  # flushes before closing
        return real

    real = asyncio.run(scenario())
    assert real.writes == [b"HTTP/1.1 200 OK\r\n\r\nbody", b"second"] and real.closed
