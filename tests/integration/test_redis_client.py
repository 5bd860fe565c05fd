"""The API's pipelined Redis client against the real Redis, and against servers that misbehave."""

import asyncio
import socket
import time

import pytest
import redis

from cache.client import PipelinedRedis, RedisUnavailable, parse_url
from cache.resp import pack


def test_pack_is_resp2():
    assert pack(("SET", b"k\r\n", 7)) == b"*3\r\n$3\r\nSET\r\n$3\r\nk\r\n\r\n$1\r\n7\r\n"


def test_parse_url():
    t = parse_url("redis://:s3cret@cache.internal:6380/2")
    assert (t.host, t.port, t.password, t.username, t.db, t.tls) == ("cache.internal", 6380, "s3cret", None, 2, False)
    assert parse_url("rediss://app:pw@h/0").tls and parse_url("rediss://app:pw@h/0").username == "app"
    assert parse_url("unix:///run/redis.sock?db=3").path == "/run/redis.sock"
    with pytest.raises(ValueError, match="scheme"):
        parse_url("http://h")
    with pytest.raises(ValueError, match="not a number"):
        parse_url("redis://h/zero")


def test_concurrent_callers_get_their_own_replies(redis_url, namespace):
    r = redis.Redis.from_url(redis_url)
    keys = [f"vidrec:{namespace}:rc:{i}" for i in range(300)]
    r.mset({k: f"value-{i}".encode() * (i % 7 + 1) for i, k in enumerate(keys)})

    async def run() -> list[list[object]]:
        client = PipelinedRedis(redis_url, connections=2, timeout=5)
        try:
            return await asyncio.gather(
                *(client.execute_many([("GET", k), ("STRLEN", k), ("GET", f"{k}:missing")]) for k in keys)
            )
        finally:
            await client.close()

    for i, (value, length, missing) in enumerate(asyncio.run(run())):
        assert value == f"value-{i}".encode() * (i % 7 + 1) and length == len(value) and missing is None
    r.delete(*keys)


def test_database_number_in_the_url_is_selected(redis_url, namespace):
    other_db = redis_url.rsplit("/", 1)[0] + "/3"
    key = f"vidrec:{namespace}:rc:db"
    redis.Redis.from_url(other_db).set(key, b"in-db-3", ex=60)

    async def run() -> object:
        client = PipelinedRedis(other_db)
        try:
            return await client.execute("GET", key)
        finally:
            await client.close()

    assert asyncio.run(run()) == b"in-db-3"
    redis.Redis.from_url(other_db).delete(key)


def test_error_reply_is_unavailable_with_the_reason(redis_url, namespace):
    key = f"vidrec:{namespace}:rc:list"
    redis.Redis.from_url(redis_url).rpush(key, "a")

    async def run() -> None:
        client = PipelinedRedis(redis_url)
        try:
            with pytest.raises(RedisUnavailable, match="WRONGTYPE"):
                await client.execute("GET", key)
            assert await client.execute("LRANGE", key, 0, -1) == [b"a"]  # the connection is still in step
        finally:
            await client.close()

    asyncio.run(run())
    redis.Redis.from_url(redis_url).delete(key)


def test_refused_connection_fails_fast():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there

    async def run() -> None:
        client = PipelinedRedis(f"redis://127.0.0.1:{port}/0", timeout=5)
        t0 = time.monotonic()
        with pytest.raises(RedisUnavailable, match="cannot connect"):
            await client.execute("GET", "k")
        assert time.monotonic() - t0 < 2

    asyncio.run(run())


def test_a_server_that_never_answers_times_out_and_pending_calls_are_bounded():
    """A socket that accepts and reads but never replies (a stalled Redis): every call ends in
    RedisUnavailable after the timeout; past max_pending, calls fail at once."""

    async def run() -> None:
        accepted = []

        async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            accepted.append(1)
            while await reader.read(65536):
                pass

        server = await asyncio.start_server(swallow, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        client = PipelinedRedis(f"redis://127.0.0.1:{port}/0", connections=1, timeout=0.2, max_pending=5)
        try:
            t0 = time.monotonic()
            results = await asyncio.gather(*(client.execute("GET", f"k{i}") for i in range(8)), return_exceptions=True)
            elapsed = time.monotonic() - t0
            messages = [str(r) for r in results]
            assert all(isinstance(r, RedisUnavailable) for r in results), results
            assert sum("did not answer within 0.2s" in m for m in messages) == 5
            assert sum("already waiting" in m for m in messages) == 3
            assert 0.15 < elapsed < 2
            # the oldest request is now older than the stall limit (1 s): the connection is dropped
            # and the next calls go out on a fresh one (which times out in turn)
            await asyncio.sleep(1.0)
            with pytest.raises(RedisUnavailable, match="already waiting"):
                await client.execute("GET", "k")
            with pytest.raises(RedisUnavailable, match="did not answer"):
                await client.execute("GET", "k")
            assert accepted == [1, 1]
        finally:
            await client.close()
            server.close()

    asyncio.run(run())


def test_a_late_reply_goes_to_nobody_and_later_calls_get_their_own():
    """A server that answers its first command after the timeout: that call fails at the timeout,
    the late reply is dropped when it comes, and the next call gets its own reply, not that one."""

    async def run() -> None:
        async def echo_keys(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            first = True
            while data := await reader.read(65536):
                for key in [part.split(b"\r\n")[3] for part in data.split(b"*2\r\n") if part]:  # GET <key>
                    if first:
                        await asyncio.sleep(0.35)
                        first = False
                    writer.write(b"$%d\r\n%b\r\n" % (len(key), key))
                    await writer.drain()

        server = await asyncio.start_server(echo_keys, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        client = PipelinedRedis(f"redis://127.0.0.1:{port}/0", connections=1, timeout=0.2)
        try:
            t0 = time.monotonic()
            with pytest.raises(RedisUnavailable, match="did not answer within 0.2s"):
                await client.execute("GET", "slow")
            assert 0.15 < time.monotonic() - t0 < 0.3
            await asyncio.sleep(0.3)  # the late reply arrives meanwhile
            assert await client.execute("GET", "fast") == b"fast"
            assert await asyncio.gather(*(client.execute("GET", f"k{i}") for i in range(50))) == [
                f"k{i}".encode() for i in range(50)
            ]
        finally:
            await client.close()
            server.close()

    asyncio.run(run())
