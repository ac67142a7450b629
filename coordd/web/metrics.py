"""Prometheus metrics: `GET /metrics` in the text exposition format.

Counters and gauges are read at scrape time from each component's `statistics()` snapshot
(a custom collector), so the hot paths count in plain integers and pay nothing for
Prometheus. Only the request-latency histogram is observed directly, per route label
(bounded cardinality: the route table's pattern, `/api/work-sessions/:id`, never the raw
id; `other` for a path no route matches).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

__all__ = ["Metrics", "counter", "gauge"]

Source = Callable[[], Iterable[Metric]]

_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


LabelKey = str | tuple[str, ...]


def _family(cls: Any, name: str, doc: str, value: float | None,
            labels: Mapping[Any, float] | None,
            label: str | tuple[str, ...]) -> Any:
    if labels is None:
        return cls(name, doc, value=value if value is not None else 0)
    names = [label] if isinstance(label, str) else list(label)
    family = cls(name, doc, labels=names)
    for key, v in sorted(labels.items()):
        family.add_metric([key] if isinstance(key, str) else list(key), v)
    return family


def gauge(name: str, doc: str, value: float | None = None, *,
          labels: Mapping[Any, float] | None = None,
          label: str | tuple[str, ...] = "") -> GaugeMetricFamily:
    """A gauge with one value, or one sample per label value (`labels` = {value: number};
    with several label names, the keys are tuples)."""
    return _family(GaugeMetricFamily, name, doc, value, labels, label)  # type: ignore[no-any-return]  # untyped prometheus_client


def counter(name: str, doc: str, value: float | None = None, *,
            labels: Mapping[Any, float] | None = None,
            label: str | tuple[str, ...] = "") -> CounterMetricFamily:
    """A counter with one value, or one sample per label value (see `gauge`)."""
    return _family(CounterMetricFamily, name, doc, value, labels, label)  # type: ignore[no-any-return]  # untyped prometheus_client


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

    def observe(self, route: str, method: str, seconds: float) -> None:
        """One answered request, under its route's label (`coordd.web.routes`)."""
        self.request_seconds.labels(route, method).observe(seconds)

    def collect(self) -> Iterator[Metric]:
        for source in self._sources:
            yield from source()

    def describe(self) -> list[Any]:
        return []

    def render(self) -> bytes:
        return generate_latest(self.registry)
