"""The metric families a running service exposes, read from component snapshots."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.core import Metric

from coordd.web.metrics import LabelKey, counter, gauge

__all__ = ["service_metric_families"]


def service_metric_families(
    *,
    tailer: Callable[[], Any] | None,
    pipeline: Callable[[], Any] | None,
    store: Callable[[], Any],
    hub: Callable[[], Any] | None,
    plugins: Callable[[], Any],
    mongo: Callable[[], Any] | None = None,
    attention: Callable[[], Any] | None = None,
    now_ms: Callable[[], float] | None = None,
) -> Iterator[Metric]:
    """Yield every family; each argument returns its component's `statistics()`."""
    if tailer is not None:
        t = tailer()
        yield counter("coordd_tail_bytes_read", "Bytes read from the log", t.bytes_read)
        yield counter("coordd_tail_lines", "Complete lines handed on by the tailer", t.lines)
        yield gauge("coordd_tail_lag_bytes", "Bytes in the log not yet read", t.lag_bytes)
        yield counter("coordd_tail_rotations", "Rotations followed", t.rotations)
        yield counter("coordd_tail_truncations", "Truncations detected", t.truncations)
        yield counter("coordd_tail_inotify_fallbacks", "Falls back from inotify to polling",
                      t.inotify_fallbacks)
        yield gauge("coordd_tail_waiting", "1 while the log (or its directory) is missing",
                    1 if t.waiting_for else 0)
        yield gauge("coordd_tail_mode", "1 for the active follow mode", labels={t.mode: 1},
                    label="mode")
    skipped: dict[str, float] = dict(t.skipped) if tailer is not None else {}
    if pipeline is not None:
        p = pipeline()
        yield counter("coordd_events_ingested", "Events accepted into the store", p.accepted)
        yield gauge("coordd_seq", "Current sequence number", p.last_seq)
        yield counter("coordd_lines_repaired", "Events kept from lines whose invalid UTF-8 "
                      "was replaced with U+FFFD", p.repaired)
        for reason, n in p.rejected.items():
            skipped[reason] = skipped.get(reason, 0) + n
    yield counter("coordd_events_skipped", "Lines skipped, by reason", labels=skipped,
                  label="reason")
    s = store()
    yield gauge("coordd_store_events", "Events held in memory", s.events)
    yield counter("coordd_store_evicted", "Events evicted from memory", s.evicted)
    yield gauge("coordd_sessions", "Work sessions by status (now)",
                labels=dict(s.sessions_by_status), label="status")
    yield gauge("coordd_store_views", "Filtered session views cached", s.views_cached)
    if hub is not None:
        h = hub()
        yield gauge("coordd_ws_clients", "Connected WebSocket clients", h.clients)
        yield counter("coordd_ws_connections", "WebSocket connections accepted", h.connections)
        yield counter("coordd_ws_messages", "WebSocket messages sent", h.messages_sent)
        yield counter("coordd_ws_drops", "Slow WebSocket clients disconnected", h.drops)
        yield counter("coordd_ws_resyncs", "resync_required answers", h.resyncs)
        yield counter("coordd_ws_replayed_events", "Events replayed on resume", h.replayed_events)
        yield counter("coordd_ws_notices", "work_session_status and attention messages "
                      "published", h.notices)
        yield gauge("coordd_ws_filtered_clients", "WebSocket clients with a subscription",
                    h.filtered_clients)
    if attention is not None and now_ms is not None:
        att = attention()
        yield gauge("coordd_attention_open", "Attention items open now, per kind.",
                    labels=att.statistics(), label="kind")
        ages = {k: v / 1000 for k, v in att.oldest_age_ms(now_ms()).items()}
        yield gauge("coordd_attention_oldest_age_seconds",
                    "Age of the oldest open item per kind (0 when none).", labels=ages,
                    label="kind")
        yield counter("coordd_attention_opened",
                      "Attention items opened, per kind (the history included).",
                      labels=att.opened_totals(), label="kind")
    ps = plugins()
    calls = {name: st.calls for name, st in ps.plugins.items()}
    seconds = {name: st.seconds for name, st in ps.plugins.items()}
    yield counter("coordd_plugin_calls", "Classifier calls per plugin", labels=calls,
                  label="plugin")
    yield counter("coordd_plugin_seconds", "Time spent in each plugin", labels=seconds,
                  label="plugin")
    errors: dict[LabelKey, float] = {
        (name, kind): n for name, st in ps.plugins.items() for kind, n in st.errors.items()}
    yield counter("coordd_plugin_errors", "Classifier failures per plugin and kind",
                  labels=errors, label=("plugin", "kind"))
    if mongo is not None:
        m = mongo()
        yield gauge("coordd_mongo_lag_events", "Events not yet written to MongoDB", m.lag)
        yield counter("coordd_mongo_errors", "MongoDB operation failures", m.errors)
        yield gauge("coordd_mongo_up", "1 when MongoDB answers", 1 if m.state == "connected" else 0)

