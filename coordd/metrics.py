"""Prometheus metrics: `GET /metrics` in the text exposition format.

Counters and gauges are read at scrape time from each component's `statistics()` snapshot
(a custom collector), so the hot paths count in plain integers and pay nothing for
Prometheus. Only the request-latency histogram is observed directly, per route template
(bounded cardinality: `/api/work-sessions/:id`, never the raw id).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

__all__ = ["Metrics", "counter", "gauge", "route_template"]

Source = Callable[[], Iterable[Metric]]

_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


def gauge(name: str, doc: str, value: float | None = None, *,
          labels: dict[str, float] | None = None, label: str = "") -> GaugeMetricFamily:
    """A gauge with one value, or one sample per label value (`labels` = {value: number})."""
    if labels is None:
        return GaugeMetricFamily(name, doc, value=value if value is not None else 0)
    g = GaugeMetricFamily(name, doc, labels=[label])
    for key, v in sorted(labels.items()):
        g.add_metric([key], v)
    return g


def counter(name: str, doc: str, value: float | None = None, *,
            labels: dict[str, float] | None = None, label: str = "") -> CounterMetricFamily:
    """A counter with one value, or one sample per label value."""
    if labels is None:
        return CounterMetricFamily(name, doc, value=value if value is not None else 0)
    c = CounterMetricFamily(name, doc, labels=[label])
    for key, v in sorted(labels.items()):
        c.add_metric([key], v)
    return c


def route_template(path: str) -> str:
    """Collapse ids so the route label stays bounded."""
    if path.startswith("/api/work-sessions/") and path not in ("/api/work-sessions/search",):
        return ("/api/work-sessions/:id/category" if path.endswith("/category")
                else "/api/work-sessions/:id")
    known = {"/", "/api", "/api/health", "/api/events", "/api/events/search",
             "/api/work-sessions", "/api/work-sessions/search", "/api/stats", "/metrics",
             "/-/plugins", "/openapi.json", "/ws"}
    return path if path in known else "other"


class Metrics:
    """The registry, the latency histogram and the scrape-time sources."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.request_seconds = Histogram(
            "coordd_http_request_duration_seconds", "HTTP request latency by route",
            ["route", "method"], buckets=_BUCKETS, registry=self.registry,
        )
        self._sources: list[Source] = []
        self.registry.register(self)  # a duck-typed collector: collect() and describe()

    def add_source(self, source: Source) -> None:
        """Register a callable yielding metric families at scrape time."""
        self._sources.append(source)

    def observe(self, path: str, method: str, seconds: float) -> None:
        self.request_seconds.labels(route_template(path), method).observe(seconds)

    def collect(self) -> Iterator[Metric]:
        for source in self._sources:
            yield from source()

    def describe(self) -> list[Any]:
        return []

    def render(self) -> bytes:
        return generate_latest(self.registry)
