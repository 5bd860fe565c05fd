"""Prometheus metrics of one API process (its own registry, so several apps in one process and
tests do not collide). Served at ``GET /metrics`` in the text exposition format."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

# Latency buckets for a cache-hit API: most answers are around a millisecond.
BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "vidrec_http_requests", "HTTP requests by route and status", ["method", "route", "status"],
            registry=self.registry,
        )  # fmt: skip
        self.latency = Histogram(
            "vidrec_http_request_seconds", "Request latency by route", ["route"], buckets=BUCKETS,
            registry=self.registry,
        )  # fmt: skip
        self.served = Counter(
            "vidrec_served_lists", "Answers by the source that served them (cache hit, fallback)",
            ["source", "degraded"], registry=self.registry,
        )  # fmt: skip
        self.redis_errors = Counter(
            "vidrec_redis_errors", "Redis calls that failed or timed out", registry=self.registry
        )
        self.events = Counter(
            "vidrec_events_accepted", "Watch events accepted by POST /v1/events", registry=self.registry
        )

        # labelled children, looked up once per label set (labels() costs a few us per call)
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        self._served: dict[tuple[str, bool], Counter] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        if (pair := self._children.get(key)) is None:
            pair = self._children[key] = (
                self.requests.labels(method=method, route=route, status=str(status)),
                self.latency.labels(route=route),
            )
        pair[0].inc()
        pair[1].observe(seconds)

    def count_served(self, source: str, degraded: bool) -> None:
        key = (source, degraded)
        if (child := self._served.get(key)) is None:
            child = self._served[key] = self.served.labels(source=source, degraded=str(degraded).lower())
        child.inc()

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
