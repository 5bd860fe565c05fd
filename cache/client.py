"""A lean asyncio Redis client for the API: every command of every request is pipelined on a few
long-lived connections, replies are parsed by hiredis (C) and matched to callers in order.

Why not redis-py's asyncio client: it takes a connection from a pool per call, holds it for the
round trip and parses in Python objects per reply; on this project's benchmark machine it served
~12.5k GETs/s to an ASGI app where this design serves ~37k (``benchmarks/serving.py`` measures
the whole API next to ``redis-benchmark``).

Guarantees the routes rely on:
* every call either returns the reply or raises ``RedisUnavailable``: a connection is waited for
  at most ``timeout`` seconds and a reply as long again; Redis down, stalled or restarted never
  hangs a request;
* requests waiting on Redis are bounded (``max_pending`` per process); past it calls fail at once;
* a lost connection fails its waiting calls at once and the next call reconnects (concurrent
  callers share one attempt); so does one on which no reply came for ``max(1 s, 4 x timeout)``.

Pure Python + hiredis: no numpy, no TensorFlow (the cache-hit path imports this).
"""

from __future__ import annotations

import asyncio
import collections
from dataclasses import dataclass
from urllib.parse import unquote, urlparse

import hiredis

from cache.resp import Arg, pack

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
"""Where the offline side publishes and the API reads unless configured otherwise."""

__all__ = ["DEFAULT_REDIS_URL", "PipelinedRedis", "RedisReplyError", "RedisUnavailable", "parse_url"]


class RedisUnavailable(Exception):
    """Redis did not answer in time, refused the connection, or replied with an error."""


class RedisReplyError(RedisUnavailable):
    """Redis answered, with an error reply (the server is up; the command or the data is wrong)."""


class _Waiter:
    __slots__ = ("fut", "want", "replies", "sent_at")

    def __init__(self, fut: asyncio.Future, want: int, sent_at: float) -> None:  # type: ignore[type-arg]
        self.fut, self.want, self.replies, self.sent_at = fut, want, [], sent_at


class _Connection(asyncio.Protocol):
    """One socket; replies arrive in the order commands were written."""

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout: float, stall_seconds: float) -> None:
        # Kept, not looked up per call: on Python 3.11 asyncio.get_running_loop() makes a getpid()
        # system call each time, which py-spy --native put at 8.7% of a cache hit's CPU time.
        self.loop = loop
        self.reader = hiredis.Reader()
        self.waiters: collections.deque[_Waiter] = collections.deque()
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.outbox: list[bytes] = []  # written once per event-loop turn: one syscall for many requests
        # Timeouts: one timer per connection, not per request (a timer handle per call cost ~3% of a
        # cache hit). Requests are answered in order, so their deadlines are too: the timer is set
        # for the oldest unexpired deadline and, when it fires, fails every request past its own.
        self.timeout, self.stall_seconds = timeout, stall_seconds
        self.deadlines: collections.deque[_Waiter] = collections.deque()  # sent, not yet checked
        self.watchdog: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        try:
            while (reply := self.reader.gets()) is not False:
                w = self.waiters[0]
                w.replies.append(reply)
                if len(w.replies) == w.want:
                    self.waiters.popleft()
                    if self.deadlines and self.deadlines[0] is w:  # answered in time: nothing to check
                        self.deadlines.popleft()
                    if not w.fut.done():  # a timed-out caller has gone; its replies are dropped
                        w.fut.set_result(w.replies)
        except (hiredis.ProtocolError, IndexError) as exc:  # garbage, or a reply nobody asked for
            self._fail(RedisUnavailable(f"Redis protocol error: {exc!r}"))
            if self.transport is not None:
                self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(RedisUnavailable(f"connection to Redis lost ({exc or 'closed by the server'})"))

    def _fail(self, error: Exception) -> None:
        self.closed = True
        self.deadlines.clear()
        if self.watchdog is not None:
            self.watchdog.cancel()
            self.watchdog = None
        while self.waiters:
            w = self.waiters.popleft()
            if not w.fut.done():
                w.fut.set_exception(error)

    def send(self, payload: bytes, want: int) -> asyncio.Future:  # type: ignore[type-arg]
        """Queue ``payload`` (``want`` commands); the future gets their replies, or RedisUnavailable
        once ``timeout`` seconds pass without them."""
        loop = self.loop
        fut = loop.create_future()
        w = _Waiter(fut, want, loop.time())
        self.waiters.append(w)
        self.deadlines.append(w)
        if self.watchdog is None:
            self.watchdog = loop.call_at(w.sent_at + self.timeout, self._watch)
        if not self.outbox:
            loop.call_soon(self._flush)
        self.outbox.append(payload)
        return fut

    def _watch(self) -> None:
        self.watchdog = None
        now = self.loop.time()
        while self.deadlines and self.deadlines[0].sent_at + self.timeout <= now:
            w = self.deadlines.popleft()
            if not w.fut.done():  # it stays in ``waiters``: its replies, if they come, are dropped
                w.fut.set_exception(RedisUnavailable(f"Redis did not answer within {self.timeout}s"))
        while self.deadlines and self.deadlines[0].fut.done():  # cancelled by their callers
            self.deadlines.popleft()
        self.drop_if_stalled(now, self.stall_seconds)
        if self.deadlines and not self.closed:
            self.watchdog = self.loop.call_at(self.deadlines[0].sent_at + self.timeout, self._watch)

    def drop_if_stalled(self, now: float, stall_seconds: float) -> None:
        """Close the connection when its oldest request has waited ``stall_seconds``: Redis answers
        in order, so nothing came back on it in that time (a stalled server, or a half-open TCP
        connection that would otherwise hold every later request). The next call reconnects."""
        if self.waiters and now - self.waiters[0].sent_at > stall_seconds and self.transport is not None:
            self._fail(RedisUnavailable(f"no reply from Redis for {stall_seconds}s; reconnecting"))
            self.transport.abort()

    def _flush(self) -> None:
        payload, self.outbox = b"".join(self.outbox), []
        if not self.closed:
            self.transport.write(payload)  # type: ignore[union-attr]


@dataclass(frozen=True)
class _Target:
    host: str
    port: int
    path: str | None  # unix socket
    tls: bool
    username: str | None
    password: str | None
    db: int


def parse_url(url: str) -> _Target:
    """redis://[[user]:password@]host[:port][/db], rediss:// (TLS), unix:///path[?db=N]."""
    u = urlparse(url)
    if u.scheme not in ("redis", "rediss", "unix"):
        raise ValueError(f"unsupported Redis URL scheme {u.scheme!r} in {url!r} (redis, rediss, unix)")
    db_text = u.path.strip("/") if u.scheme != "unix" else ""
    for part in u.query.split("&"):
        if part.startswith("db="):
            db_text = part[3:]
    try:
        db = int(db_text or 0)
    except ValueError:
        raise ValueError(f"Redis URL {url!r}: database {db_text!r} is not a number") from None
    return _Target(
        host=u.hostname or "127.0.0.1",
        port=u.port or 6379,
        path=u.path if u.scheme == "unix" else None,
        tls=u.scheme == "rediss",
        username=unquote(u.username) if u.username else None,
        password=unquote(u.password) if u.password else None,
        db=db,
    )


class RawReplies:
    """``execute_many`` and ``execute`` over a client's ``execute_raw`` (replies with error
    replies as values): an error reply raises ``RedisReplyError``."""

    async def execute_raw(self, commands: list[tuple[Arg, ...]]) -> list[object]:
        raise NotImplementedError

    async def execute_many(self, commands: list[tuple[Arg, ...]]) -> list[object]:
        """Send the commands in one write and return their replies, in order.

        Raises RedisUnavailable on timeout, connection trouble, or an error reply.
        """
        replies = await self.execute_raw(commands)
        for r in replies:
            if isinstance(r, hiredis.ReplyError):
                raise RedisReplyError(f"Redis replied with an error: {r}")
        return replies

    async def execute(self, *args: Arg) -> object:
        return (await self.execute_many([args]))[0]


class PipelinedRedis(RawReplies):
    def __init__(self, url: str, connections: int = 2, timeout: float = 0.25, max_pending: int = 10_000) -> None:
        self._target = parse_url(url)
        self._timeout = timeout
        self._max_pending = max_pending
        self._stall_seconds = max(1.0, 4 * timeout)
        self._slots: list[_Connection | None] = [None] * connections
        self._connecting: list[asyncio.Future | None] = [None] * connections  # type: ignore[type-arg]
        self._next = 0

    def _new_connection(self) -> _Connection:
        return _Connection(asyncio.get_running_loop(), self._timeout, self._stall_seconds)

    async def _open(self) -> _Connection:
        t, loop = self._target, asyncio.get_running_loop()
        if t.path:
            _, conn = await loop.create_unix_connection(self._new_connection, t.path)
        else:
            _, conn = await loop.create_connection(self._new_connection, t.host, t.port, ssl=True if t.tls else None)
        hello: list[tuple[Arg, ...]] = []
        if t.password is not None:
            hello.append(("AUTH", t.username, t.password) if t.username else ("AUTH", t.password))
        if t.db:
            hello.append(("SELECT", t.db))
        if hello:
            replies = await conn.send(b"".join(pack(c) for c in hello), len(hello))
            bad = [r for r in replies if isinstance(r, hiredis.ReplyError)]
            if bad:
                conn.transport.abort()  # type: ignore[union-attr]
                raise RedisUnavailable(f"Redis refused the connection set-up: {bad[0]}")
        return conn

    async def _connection(self) -> _Connection:
        i = self._next = (self._next + 1) % len(self._slots)
        conn = self._slots[i]
        if conn is not None and not conn.closed:
            return conn
        pending = self._connecting[i]
        if pending is None:  # the first caller opens it; the others wait on the same attempt
            pending = self._connecting[i] = asyncio.ensure_future(asyncio.wait_for(self._open(), self._timeout))
            pending.add_done_callback(lambda f, i=i: self._opened(i, f))
        try:
            return await asyncio.wait_for(asyncio.shield(pending), self._timeout)
        except RedisUnavailable:
            raise
        except TimeoutError:
            raise RedisUnavailable(f"no connection to Redis within {self._timeout}s") from None
        except (OSError, hiredis.ProtocolError) as exc:
            raise RedisUnavailable(f"cannot connect to Redis: {exc!r}") from exc

    def _opened(self, i: int, fut: asyncio.Future) -> None:  # type: ignore[type-arg]
        self._connecting[i] = None
        if not fut.cancelled() and fut.exception() is None:
            self._slots[i] = fut.result()

    async def execute_raw(self, commands: list[tuple[Arg, ...]]) -> list[object]:
        """Send the commands in one write and return their replies, in order, error replies as
        ``hiredis.ReplyError`` values (a cluster client reads MOVED and ASK from them).

        Raises RedisUnavailable on timeout or connection trouble.
        """
        conn = await self._connection()
        if len(conn.waiters) >= self._max_pending:
            conn.drop_if_stalled(conn.loop.time(), self._stall_seconds)
            raise RedisUnavailable(f"{self._max_pending} requests already waiting on Redis")
        return await conn.send(b"".join([pack(c) for c in commands]), len(commands))

    async def close(self) -> None:
        for conn in self._slots:
            if conn is not None and conn.transport is not None:
                conn.transport.close()
        self._slots = [None] * len(self._slots)
