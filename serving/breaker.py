"""A circuit breaker for the serving side's Redis calls.

Closed: calls go to Redis; ``failures`` consecutive calls that got no answer (timeout, lost or
refused connection, too many waiting) open it. Open: calls fail at once with ``CircuitOpen`` (the
routes answer from the in-process fallback in microseconds instead of each waiting out its own
timeout) for ``cooldown_seconds``. Then half-open: the next call is the probe and goes to Redis;
while it is in flight the others still fail fast. The probe's success closes the breaker, its
failure opens it for another cool-down. An error *reply* is an answer: Redis is up, and the call
counts as a success here.

One event loop thread is the only user, so the state needs no lock.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from cache.client import RedisReplyError, RedisUnavailable

T = TypeVar("T")


class CircuitOpen(RedisUnavailable):
    """Redis was not called: the breaker is open after consecutive failures."""


class CircuitBreaker:
    def __init__(
        self, failures: int = 5, cooldown_seconds: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if failures < 1 or cooldown_seconds <= 0:
            raise ValueError("failures must be >= 1 and cooldown_seconds > 0")
        self.failures, self.cooldown, self._clock = failures, cooldown_seconds, clock
        self._consecutive = 0
        self._opened_at: float | None = None  # None: closed
        self._probing = False
        self.openings = 0
        """Times it went from closed to open (a failed probe re-opens without counting)."""
        self.probes = 0
        self.rejected = 0
        """Calls failed at once while open."""
        self.last_error = ""

    @property
    def state(self) -> str:
        if self._opened_at is None:
            return "closed"
        return "half-open" if self._clock() - self._opened_at >= self.cooldown else "open"

    async def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """``await fn()`` unless the breaker is open; records the outcome."""
        probe = False
        if self._opened_at is not None:
            waited = self._clock() - self._opened_at
            if waited < self.cooldown or self._probing:
                self.rejected += 1
                raise CircuitOpen(
                    f"Redis circuit open after {self.failures} consecutive failures "
                    f"({self.last_error}); next probe in {max(0.0, self.cooldown - waited):.2f}s"
                )
            probe = self._probing = True
            self.probes += 1
        try:
            result = await fn()
        except RedisReplyError:
            self._success()
            raise
        except RedisUnavailable as exc:
            self._failure(str(exc), probe)
            raise
        finally:
            if probe:
                self._probing = False
        self._success()
        return result

    def _success(self) -> None:
        self._consecutive, self._opened_at = 0, None

    def _failure(self, error: str, probe: bool) -> None:
        self.last_error = error
        self._consecutive += 1
        if probe:
            self._opened_at = self._clock()  # another cool-down
        elif self._opened_at is None and self._consecutive >= self.failures:
            self._opened_at = self._clock()
            self.openings += 1


class NodeBreakers:
    """A ``CircuitBreaker`` per Redis Cluster node (``guard``, given to the cluster client), and
    the store's breaker interface over all of them: ``call`` passes through (each node's calls are
    guarded below it), the counts are sums and the state is "open" while any node's breaker is not
    closed. A dead master opens its own breaker: only the users in its slots get degraded answers."""

    def __init__(
        self, failures: int = 5, cooldown_seconds: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        CircuitBreaker(failures, cooldown_seconds, clock)  # checks the settings now
        self.failures, self.cooldown, self._clock = failures, cooldown_seconds, clock
        self.nodes: dict[object, CircuitBreaker] = {}

    async def guard(self, node: object, fn: Callable[[], Awaitable[T]]) -> T:
        breaker = self.nodes.get(node)
        if breaker is None:
            breaker = self.nodes[node] = CircuitBreaker(self.failures, self.cooldown, self._clock)
        return await breaker.call(fn)

    async def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        return await fn()

    @property
    def openings(self) -> int:
        return sum(b.openings for b in self.nodes.values())

    @property
    def rejected(self) -> int:
        return sum(b.rejected for b in self.nodes.values())

    @property
    def probes(self) -> int:
        return sum(b.probes for b in self.nodes.values())

    @property
    def state(self) -> str:
        states = {b.state for b in self.nodes.values()}
        return "open" if "open" in states else "half-open" if "half-open" in states else "closed"

    @property
    def last_error(self) -> str:
        return "; ".join(b.last_error for b in self.nodes.values() if b.state != "closed")
