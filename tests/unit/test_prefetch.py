import threading

import pytest

from recsys.prefetch import prefetched


def test_yields_everything_in_order_from_another_thread():
    seen_on = set()

    def items():
        for i in range(50):
            seen_on.add(threading.current_thread().name)
            yield i

    assert list(prefetched(items(), depth=3)) == list(range(50))
    assert seen_on == {"prefetch"}


def test_producer_error_is_raised_in_the_consumer_after_what_came_before():
    def items():
        yield 1
        yield 2
        raise ValueError("bad block")

    got = []
    with pytest.raises(ValueError, match="bad block"):
        for x in prefetched(items()):
            got.append(x)
    assert got == [1, 2]


def test_consumer_stopping_early_stops_and_closes_the_producer():
    produced, closed = [], threading.Event()

    def items():
        try:
            for i in range(1_000_000):
                produced.append(i)
                yield i
        finally:
            closed.set()

    gen = prefetched(items(), depth=2)
    assert next(gen) == 0
    gen.close()  # joins the producer
    assert closed.is_set() and len(produced) <= 5
