"""Prometheus metrics of one API process (its own registry, so several apps in one process and
tests do not collide). Served at ``GET /metrics`` in the text exposition format."""

from __future__ import annotations

import bisect
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

# Latency buckets for a cache-hit API: most answers are around a millisecond.
BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    """Per-request figures are kept as plain counts (the event loop's thread is the only writer)
    and turned into Prometheus metrics when ``/metrics`` is scraped: prometheus_client's locked
    Counter.inc and Histogram.observe cost ~4 us per request, ~6% of a cache hit's CPU time
    (py-spy under ``benchmarks/serving.py``)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._requests: dict[tuple[str, str, int], int] = {}
        self._latency: dict[str, tuple[list[int], list[float]]] = {}  # route -> (bucket counts, [sum])
        self._served: dict[tuple[str, bool], int] = {}
        self._served_items: dict[tuple[str, str], int] = {}  # (model version, source) -> items answered
        self._watched: dict[tuple[str, str], int] = {}  # (model version, source) -> recommended, then watched
        self.breaker = None  # the store's CircuitBreaker, read at scrape time (set when the app starts)
        self.registry.register(self)  # type: ignore[arg-type]  # a collector: collect() below
        self.redis_errors = Counter(
            "vidrec_redis_errors", "Redis calls that failed or timed out", registry=self.registry
        )
        self.events = Counter(
            "vidrec_events_accepted", "Watch events accepted by POST /v1/events", registry=self.registry
        )

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        self._requests[key] = self._requests.get(key, 0) + 1
        if (hist := self._latency.get(route)) is None:
            hist = self._latency[route] = ([0] * (len(BUCKETS) + 1), [0.0])
        hist[0][bisect.bisect_left(BUCKETS, seconds)] += 1  # le: a value on a bound counts in it
        hist[1][0] += seconds

    def count_served(self, source: str, degraded: bool, version: str | None = None, items: int = 0) -> None:
        key = (source, degraded)
        self._served[key] = self._served.get(key, 0) + 1
        if version is not None:
            self.count_items(version, source, items)

    def count_items(self, version: str, source: str, items: int) -> None:
        """Videos answered from ``version`` by ``source`` (``fresh``: mixed into an answer)."""
        key = (version, source)
        self._served_items[key] = self._served_items.get(key, 0) + items

    def count_watched(self, version: str, source: str) -> None:
        """A posted watch of a video the API had recommended (the event's ``recommended_by``)."""
        key = (version, source)
        self._watched[key] = self._watched.get(key, 0) + 1

    def describe(self) -> list[Metric]:
        return []  # names are known only from collect(); registering must not call it early

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "vidrec_http_requests", "HTTP requests by route and status", labels=["method", "route", "status"]
        )
        for (method, route, status), n in list(self._requests.items()):
            requests.add_metric([method, route, str(status)], n)
        yield requests
        latency = HistogramMetricFamily("vidrec_http_request_seconds", "Request latency by route", labels=["route"])
        for route, (counts, total) in list(self._latency.items()):
            cumulative, running = [], 0
            for bound, n in zip([*map(str, BUCKETS), "+Inf"], counts, strict=True):
                running += n
                cumulative.append((bound, running))
            latency.add_metric([route], cumulative, total[0])
        yield latency
        served = CounterMetricFamily(
            "vidrec_served_lists",
            "Answers by the source that served them (cache hit, fallback)",
            labels=["source", "degraded"],
        )
        for (source, degraded), n in list(self._served.items()):
            served.add_metric([source, str(degraded).lower()], n)
        yield served
        # Online measurement: watched / served items, per model version and source, is the hit rate.
        items = CounterMetricFamily(
            "vidrec_served_items", "Videos answered, by model version and source", labels=["version", "source"]
        )
        for (version, source), n in list(self._served_items.items()):
            items.add_metric([version, source], n)
        yield items
        watched = CounterMetricFamily(
            "vidrec_recommended_watches",
            "Posted watches of videos the API had recommended (recommended_by), by model version and source",
            labels=["version", "source"],
        )
        for (version, source), n in list(self._watched.items()):
            watched.add_metric([version, source], n)
        yield watched
        if (b := self.breaker) is not None:
            yield CounterMetricFamily(
                "vidrec_redis_breaker_openings", "Times the Redis circuit breaker opened", value=b.openings
            )
            yield CounterMetricFamily(
                "vidrec_redis_breaker_rejected", "Redis calls not made because the breaker was open", value=b.rejected
            )
            state = GaugeMetricFamily("vidrec_redis_breaker_open", "1 while the breaker is open or half-open")
            state.add_metric([], 0 if b.state == "closed" else 1)
            yield state

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
