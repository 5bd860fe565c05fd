"""The circuit breaker's states, with a hand-driven clock (the Redis behind it is a unit fake)."""

import asyncio

import pytest

from cache.client import RedisReplyError, RedisUnavailable
from serving.breaker import CircuitBreaker, CircuitOpen


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def outcome(breaker: CircuitBreaker, result: object) -> object:
    """One call through the breaker whose callee returns ``result`` or raises it."""
    calls = []

    async def fn() -> object:
        calls.append(1)
        if isinstance(result, Exception):
            raise result
        return result

    try:
        value = asyncio.run(breaker.call(fn))
    except RedisUnavailable as exc:
        value = exc
    return (value, bool(calls))


def test_opens_after_consecutive_failures_then_one_probe_closes_it():
    clock = Clock()
    b = CircuitBreaker(failures=3, cooldown_seconds=2.0, clock=clock)
    timeout = RedisUnavailable("Redis did not answer within 0.25s")
    for _ in range(2):
        assert outcome(b, timeout)[1] and b.state == "closed"
    assert outcome(b, "ok") == ("ok", True)  # a success resets the count
    for _ in range(3):
        outcome(b, timeout)
    assert b.state == "open" and b.openings == 1
    err, called = outcome(b, "ok")
    assert isinstance(err, CircuitOpen) and not called and "0.25s" in str(err) and b.rejected == 1
    clock.t = 2.0
    assert b.state == "half-open"
    assert outcome(b, timeout)[1] and b.state == "open"  # the probe failed: another cool-down
    assert b.openings == 1 and b.probes == 1
    assert isinstance(outcome(b, "ok")[0], CircuitOpen)
    clock.t = 4.5
    assert outcome(b, "ok") == ("ok", True) and b.state == "closed" and b.probes == 2


def test_an_error_reply_is_an_answer():
    b = CircuitBreaker(failures=1, cooldown_seconds=1.0, clock=Clock())
    value, called = outcome(b, RedisReplyError("WRONGTYPE"))
    assert isinstance(value, RedisReplyError) and called and b.state == "closed"


def test_only_one_probe_at_a_time_and_a_cancelled_probe_frees_the_slot():
    clock = Clock()
    b = CircuitBreaker(failures=1, cooldown_seconds=1.0, clock=clock)
    outcome(b, RedisUnavailable("down"))
    clock.t = 1.0

    async def run() -> None:
        gate = asyncio.Event()

        async def slow() -> str:
            await gate.wait()
            return "ok"

        probe = asyncio.ensure_future(b.call(slow))
        await asyncio.sleep(0)
        with pytest.raises(CircuitOpen):  # the probe is in flight: others fail fast
            await b.call(slow)
        probe.cancel()
        with pytest.raises(asyncio.CancelledError):
            await probe
        gate.set()
        assert await b.call(slow) == "ok"  # the next call is the probe and closes it

    asyncio.run(run())
    assert b.state == "closed"


def test_settings_are_checked():
    with pytest.raises(ValueError):
        CircuitBreaker(failures=0)
