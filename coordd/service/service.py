"""The daemon's lifetime: one root nursery owning every long-lived task.

Components start in dependency order with `await nursery.start(...)` and report ready
only when they are: the pipeline once everything on disk is stored, the web server once it
listens. SIGTERM/SIGINT drain within `[server] shutdown_grace` and exit 0; SIGHUP re-reads
the configuration and applies what can change live. A component that crashes (or returns
while it should run) is logged by name and stops the daemon with a non-zero exit, so that
systemd restarts it: never a silent half-alive state.

Every component is built by the constructor, before `run`, and handed what it reads.
With `[mongo] uri` the MongoDB tier (`coordd.mongo.tier.MongoTier`) runs the sync worker,
answers search, deep paging and stats from MongoDB, and gives a warm restart its history
when the checkpoint allows. In follower mode (`[mode] follower`) there is no tailer,
pipeline, checkpoint or sync worker: the tier's follower feeds the store and the hub from
MongoDB.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import orjson
import trio
from hypercorn.trio import serve as hypercorn_serve
from prometheus_client.core import Metric

from coordd.backend import MemoryQueries, QueryBackend
from coordd.config import Config, changed_keys, load_config
from coordd.core.attentionview import attention_answer
from coordd.core.enrich import Enricher
from coordd.core.overrides import Overrides
from coordd.core.store import Store
from coordd.errors import ComponentCrashed, CoorddError
from coordd.live.hub import Hub
from coordd.plugins.host import PluginHost, allow_list_from_env
from coordd.service.attention import AttentionRunner
from coordd.service.gcpolicy import run_gc_policy
from coordd.service.health import daemon_checks, health_answer
from coordd.service.listen import activation_binds, hypercorn_config, listen_socket
from coordd.service.logs import setup_logging
from coordd.service.mainagents import MainAgents
from coordd.service.metrics import service_metric_families
from coordd.service.notify import Notifier, monotonic_usec, status_loop
from coordd.service.state import (
    adopt_legacy_overrides,
    load_snapshot,
    prepare_log_dir,
    prepare_state_dir,
    save_snapshot,
)
from coordd.tail.checkpoint import Checkpoint, load_checkpoint
from coordd.tail.pipeline import History, Listener, Pipeline
from coordd.tail.snapshot import snapshot_fingerprint
from coordd.tail.tailer import Tailer
from coordd.web.app import create_app
from coordd.web.guard import Guard
from coordd.web.metrics import Metrics
from coordd.web.openapi import openapi_document
from coordd.web.routes import ROUTES, AppContext
from coordd.web.static import ConsoleFiles

if TYPE_CHECKING:
    from coordd.mongo.tier import MongoTier

__all__ = ["Service", "ServiceInfo"]

log = logging.getLogger(__name__)

#: A long-lived task of the root nursery: runs until cancelled, reports ready through
#: `task_status`.
Component = Callable[..., Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class ServiceInfo:
    """What `Service.run` hands to `task_status.started()`: where it listens."""

    urls: list[str]
    port: int


class Service:
    """Builds every component from a `Config` (all of them, before `run`) and runs them.

    `mongo_client`: a ready MongoDB client (a `pymongo.MongoClient`, or mongomock's in
    tests) to use instead of one made from `[mongo] uri` (which must still be set to
    enable the tier). `cli_overrides`: the command line's `load_config` overrides, applied
    again when SIGHUP re-reads the file. `tasks`: more components by name (the demo's log
    writer), started first in the root nursery and stopped with it.
    """

    def __init__(self, config: Config, *, notifier: Notifier | None = None,
                 mongo_client: Any = None,
                 cli_overrides: Mapping[str, Mapping[str, Any]] | None = None,
                 tasks: Mapping[str, Component] | None = None) -> None:
        cfg = config
        self.config = cfg
        self.notifier = notifier if notifier is not None else Notifier()
        self.cli_overrides = cli_overrides
        self.tasks = dict(tasks or {})
        self.state_dir = cfg.state_dir()
        self.main_agents = MainAgents(cfg.openclaw_config_path())
        self.plugins = PluginHost(
            settings=cfg.plugins.settings, disabled=cfg.plugins.disabled,
            allow=allow_list_from_env(os.environ),
        )
        # Started before anything validates a category: the overrides' first read already
        # keeps an override to a plugin's category.
        self.plugins.start()
        self.categories = self.plugins.vocabulary()
        self.overrides = Overrides(cfg.overrides_path(), categories=self.categories)
        self.store = Store(max_events=cfg.store.max_events, overrides=self.overrides)
        self.enricher = Enricher(self.plugins, self.categories, self.main_agents.current)
        self.hub = Hub(
            epoch=self._epoch, replay_window=cfg.websocket.replay_window,
            client_queue=cfg.websocket.client_queue, last_seq=lambda: self.store.last_seq,
        )
        self.attention = AttentionRunner(cfg.attention, self.hub.publish_changes)
        self.checkpoint: Checkpoint | None = None
        self.tailer: Tailer | None = None
        self.pipeline: Pipeline | None = None
        self.mongo: MongoTier | None = None
        if cfg.mode.follower:
            # load_config refuses a follower without `[mongo] uri`.
            from coordd.mongo.tier import MongoTier

            self.mongo = MongoTier.following(cfg, lambda: self.store, self._new_epoch_store,
                                             [self.hub.publish, self.attention.listener],
                                             client=mongo_client)
        else:
            self._build_tailing(mongo_client)
        self.metrics = Metrics()
        self.metrics.add_source(self._metric_families)
        if self.mongo is not None:
            self.metrics.add_source(self.mongo.metric_families)
        backend: QueryBackend = (self.mongo.queries if self.mongo is not None
                                 else MemoryQueries(lambda: self.store))
        self.web = AppContext(
            backend=backend, write_token=cfg.server.write_token,
            guard=Guard.of(cfg.server.allowed_origins, cfg.server.allowed_hosts),
            max_body_bytes=cfg.server.max_body_bytes, max_query_bytes=cfg.server.max_query_bytes,
            health=self.health, plugins=self.plugins.describe, metrics=self.metrics.render,
            observe=self.metrics.observe,
            openapi=orjson.dumps(openapi_document(ROUTES, self.categories.names)),
            attention=lambda params, now_ms: attention_answer(self.attention.tracker, params,
                                                              now_ms),
        )
        self.web.console = ConsoleFiles(base_path=cfg.web.base_path)
        self.app = create_app(self.web, websocket=self.hub.serve)
        self.started_at = time.time()
        self._shutdown = trio.Event()
        self._stopping = False
        self._scopes: dict[str, trio.CancelScope] = {}
        self._listen_fd: int | None = None
        self._done: dict[str, trio.Event] = {}

    def _build_tailing(self, mongo_client: Any) -> None:
        """The tailer, the pipeline and (with `[mongo] uri`) the MongoDB tier of a tailing
        instance."""
        cfg = self.config
        self.checkpoint = checkpoint = load_checkpoint(self.state_dir)
        self.tailer = Tailer(
            cfg.log_path(), checkpoint=checkpoint, poll_interval=cfg.log.poll_interval,
            watch=cfg.log.watch, max_line_bytes=cfg.log.max_line_bytes,
            read_rotated=cfg.log.read_rotated, history_limit=cfg.store.max_events,
        )
        # The hub first: a batch's events are pushed before the changes they cause.
        listeners: list[Listener] = [self.hub.publish, self.attention.listener]
        if cfg.mongo.uri:
            from coordd.mongo.tier import MongoTier

            # The re-read runs in its own thread: it gets its own Enricher.
            self.mongo = MongoTier.tailing(
                cfg, self.store, client=mongo_client,
                reread_enricher=Enricher(self.plugins, self.categories,
                                         self.main_agents.current))
            listeners.append(self.mongo.offer)
            # Documents prepared while each event is fresh in the cache; the sync worker
            # drops them once written (SyncWorker.offer).
            self.enricher = Enricher(self.plugins, self.categories, self.main_agents.current,
                                     prepare=self.mongo.prepare_source)
        self.pipeline = Pipeline(
            self.tailer, self.enricher, self.store, state_dir=self.state_dir,
            checkpoint=checkpoint, checkpoint_interval=cfg.state.checkpoint_interval,
            listeners=listeners,
        )

    def _epoch(self) -> str:
        """The epoch the hub tells its clients: the pipeline's (tailing), else the store's."""
        return self.pipeline.epoch if self.pipeline is not None else self.store.epoch

    def _new_epoch_store(self, epoch: str) -> Store:
        """A follower's new epoch is a new sequence space: a fresh store, installed where
        every component reads it (`self.store`: the routes, the hub, the metrics)."""
        self.store = Store(max_events=self.config.store.max_events, overrides=self.overrides,
                           epoch=epoch)
        self.attention.reset()
        return self.store

    # ------------------------------------------------------------------ lifetime

    async def run(
        self,
        *,
        shutdown_trigger: Callable[[], Awaitable[None]] | None = None,
        task_status: trio.TaskStatus[ServiceInfo] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Run until SIGTERM/SIGINT (or `shutdown_trigger` returns); drain; return.

        Raises `ListenError` at once, before the history is read, when the listen
        address cannot be bound, and `ComponentCrashed` (inside an exception group) when
        a component fails.
        """
        self._shutdown = trio.Event()
        # The port first: a busy one is said at once, not after reading the whole history.
        binds = self._listen()
        try:
            await self._run(binds, shutdown_trigger, task_status)
        finally:
            if "web" not in self._done:  # hypercorn never took the socket over
                self._close_listener()

    def _listen(self) -> list[str]:
        """hypercorn's binds: the sockets systemd passed, else our own socket, bound and
        listening already (raises `ListenError` when it cannot be)."""
        activation = activation_binds(os.environ)
        if activation:
            return activation
        sock = listen_socket(self.config.server.host, self.config.server.port)
        self._listen_fd = sock.detach()  # hypercorn owns (and closes) it from here on
        return [f"fd://{self._listen_fd}"]

    def _close_listener(self) -> None:
        fd, self._listen_fd = self._listen_fd, None
        if fd is not None:
            os.close(fd)

    async def _run(self, binds: list[str], shutdown_trigger: Callable[[], Awaitable[None]] | None,
                   task_status: trio.TaskStatus[ServiceInfo]) -> None:
        cfg = self.config
        prepare_state_dir(self.state_dir)
        adopt_legacy_overrides(self.overrides, cfg.legacy_overrides_path())
        history: History | None = None
        if self.pipeline is not None:
            prepare_log_dir(cfg.log_path())
            history = await self._load_history()
        hconfig = hypercorn_config(binds, shutdown_grace=cfg.server.shutdown_grace,
                                   heartbeat=cfg.websocket.heartbeat)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._signals)
            if shutdown_trigger is not None:
                nursery.start_soon(self._external_trigger, shutdown_trigger)
            for name, task in self.tasks.items():
                await nursery.start(self._component, name, task)
            if self.pipeline is not None:
                await nursery.start(self._component, "pipeline",
                                    partial(self.pipeline.run, history=history))
            if self.mongo is not None:
                await nursery.start(self._component, self.mongo.name, self.mongo.run)
            # The history is stored (or being followed): the tracker reads it, then counts
            # each live batch and the clock.
            self.attention.prime(self.store.iter_events())
            await nursery.start(self._component, "attention", self.attention.run)
            urls: list[str] = await nursery.start(
                self._component, "web",
                lambda task_status: hypercorn_serve(
                    self.app, hconfig, shutdown_trigger=self._shutdown.wait,
                    task_status=task_status,
                ),
            )
            port = int(urls[0].rsplit(":", 1)[1]) if urls else cfg.server.port
            log.info("coordd ready on %s (%d events, epoch %s%s)", ", ".join(urls),
                     len(self.store), self.store.epoch,
                     ", following MongoDB" if cfg.mode.follower else "")
            self.notifier.notify("READY=1", f"STATUS={self.status_line()}")
            nursery.start_soon(run_gc_policy)
            if self.notifier.enabled:
                nursery.start_soon(partial(status_loop, self.notifier, self.status_line,
                                           self.stalled, lambda: self.config.log.poll_interval))
            task_status.started(ServiceInfo(urls=urls, port=port))
            await self._shutdown.wait()
            self._stopping = True
            stop_started = trio.current_time()
            self.notifier.notify("STOPPING=1")
            log.info("shutting down (grace %.1fs)", cfg.server.shutdown_grace)
            nursery.cancel_scope.deadline = trio.current_time() + cfg.server.shutdown_grace
            # Ingestion stops now (the pipeline checkpoints while being cancelled); the web
            # server drains its open requests until done or the deadline.
            if self.pipeline is not None:
                self._scopes["pipeline"].cancel()
            elif self.mongo is not None:
                self._scopes[self.mongo.name].cancel()  # the follower
            # WebSocket clients get a close frame (1001, with the since/epoch to resume
            # with) instead of holding the shutdown for the whole grace period.
            self.hub.close_all()
            await self._drained()
            log.debug("drained %.3fs into the shutdown", trio.current_time() - stop_started)
            nursery.cancel_scope.cancel()
        if self.pipeline is not None and cfg.state.snapshot:
            save_snapshot(self.state_dir, list(self.store.iter_events()),
                          self.pipeline.stopped_at(), self._snapshot_fingerprint())
        log.info("stopped")

    async def _load_history(self) -> History | None:
        """A tailing instance's history for a warm restart: from MongoDB when the
        checkpoint allows, else from the shutdown snapshot; None: read the log."""
        checkpoint = self.checkpoint
        cfg = self.config
        if self.mongo is not None:
            events = await self.mongo.warm_history(checkpoint, cfg.log_path(),
                                                   max_events=cfg.store.max_events,
                                                   categories=self.categories)
            if events is not None:
                return History(events, "MongoDB")
        if checkpoint is not None and cfg.state.snapshot:
            events = await trio.to_thread.run_sync(partial(
                load_snapshot, self.state_dir, cfg.log_path(), checkpoint,
                self._snapshot_fingerprint(), max_events=cfg.store.max_events))
            if events is not None:
                return History(events, "the snapshot")
        return None

    def _snapshot_fingerprint(self) -> str:
        """What the snapshot's events depend on besides the log: the enabled plugins,
        the main agents, the categories and the plugins' settings."""
        plugins = [(p["name"], p["version"]) for p in self.plugins.describe() if p["enabled"]]
        return snapshot_fingerprint(plugins, self.main_agents.current(), self.categories.names,
                                    self.config.plugins.settings)

    async def _drained(self) -> None:
        """Until the web server stopped on its own, or no request is being answered and no
        WebSocket client is left. (hypercorn's ping task keeps a closed WebSocket's
        connection open until its graceful timeout: waiting for it would make every
        shutdown with a client last the whole grace period.)"""
        while not self._done["web"].is_set():
            if self.web.in_flight == 0 and self.hub.serving == 0:
                return
            await trio.sleep(0.02)

    async def _component(
        self, name: str, fn: Callable[..., Awaitable[Any]], *,
        task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Run one component in its own cancel scope; a failure or an unexpected return
        becomes `ComponentCrashed(name)`."""
        done = self._done[name] = trio.Event()
        try:
            with trio.CancelScope() as scope:
                self._scopes[name] = scope
                await fn(task_status=task_status)
        except Exception as e:
            log.critical("component %s crashed: %s", name, _describe(e), exc_info=True)
            raise ComponentCrashed(name) from e
        finally:
            done.set()
        if not self._stopping:
            log.critical("component %s stopped on its own", name)
            raise ComponentCrashed(name)

    def stalled(self, limit: float) -> str | None:
        """Why ingestion is not making progress (None when it is), for the watchdog."""
        now = trio.current_time()
        if self.tailer is not None:
            idle = now - self.tailer.statistics().last_progress
            if idle > limit:
                return f"the tail loop has not checked the log for {idle:.1f}s"
        if self.pipeline is not None:
            busy = self.pipeline.statistics().busy_since
            if busy is not None and now - busy > limit:
                return f"a batch has been in the worker thread for {now - busy:.1f}s"
        return None

    async def _external_trigger(self, trigger: Callable[[], Awaitable[None]]) -> None:
        await trigger()
        self.request_shutdown()

    def request_shutdown(self) -> None:
        """Start the graceful shutdown (what SIGTERM does)."""
        self._shutdown.set()

    async def _signals(self) -> None:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
            async for signum in signals:
                if signum == signal.SIGHUP:
                    self.notifier.notify("RELOADING=1", monotonic_usec())
                    self.reload()
                    self.notifier.notify("READY=1", f"STATUS={self.status_line()}")
                else:
                    log.info("received %s", signal.Signals(signum).name)
                    self.request_shutdown()

    def _metric_families(self) -> Iterator[Metric]:
        return service_metric_families(
            tailer=self.tailer.statistics if self.tailer else None,
            pipeline=self.pipeline.statistics if self.pipeline else None,
            store=lambda: self.store.statistics(), hub=self.hub.statistics,
            plugins=self.plugins.statistics,
            attention=lambda: self.attention.tracker, now_ms=self.attention.now_ms,
        )

    # ------------------------------------------------------------------ reload

    def reload(self) -> list[str]:
        """Re-read the configuration file; apply what can change live. Returns the keys
        that changed but need a restart (also logged)."""
        source = self.config.source
        try:
            new = load_config(source, overrides=self.cli_overrides)
        except CoorddError as e:
            log.error("reload failed, keeping the running configuration: %s", e)
            return []
        old = self.config
        applied: list[str] = []
        if (new.logging.level, new.logging.format) != (old.logging.level, old.logging.format):
            setup_logging(new.logging.level, new.logging.format)
            applied.append("logging")
        if new.log.poll_interval != old.log.poll_interval and self.tailer is not None:
            self.tailer.set_poll_interval(new.log.poll_interval)
            applied.append("log.poll_interval")
        if new.server.write_token != old.server.write_token:
            self.web.write_token = new.server.write_token
            applied.append("server.write_token")
        if new.state.checkpoint_interval != old.state.checkpoint_interval and self.pipeline:
            self.pipeline.checkpoint_interval = new.state.checkpoint_interval
            applied.append("state.checkpoint_interval")
        live = {"logging.level", "logging.format", "log.poll_interval", "server.write_token",
                "state.checkpoint_interval"}
        not_applied = [key for key in changed_keys(old, new) if key not in live]
        for key in not_applied:
            log.warning("reload: %s changed but needs a restart to take effect", key)
        log.info("configuration reloaded from %s; applied: %s", source or "<defaults>",
                 ", ".join(applied) or "nothing")
        self.config = new
        return not_applied

    def health(self) -> tuple[bool, dict[str, list[dict[str, Any]]]]:
        """Component checks for /api/health: (no check failed, checks by component)."""
        return health_answer(daemon_checks(
            tailer=self.tailer, pipeline=self.pipeline, events=len(self.store),
            state_dir=self.state_dir, main_agents=self.main_agents, mongo=self.mongo))

    def status_line(self) -> str:
        """One line for `systemctl status`."""
        parts = [f"{len(self.store)} events"]
        if self.tailer is not None:
            st = self.tailer.statistics()
            parts.append(f"waiting for {st.waiting_for}" if st.waiting_for
                         else f"lag {st.lag_bytes} B ({st.mode})")
        return ", ".join(parts)


def _describe(e: BaseException) -> str:
    """The leaf exceptions' messages (nurseries wrap them in groups)."""
    if isinstance(e, BaseExceptionGroup):
        return "; ".join(_describe(x) for x in e.exceptions)
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__

