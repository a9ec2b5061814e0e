"""run_service: one trio nursery for everything a Nexq process runs.

``nexq run`` hosts the REST API and dashboard, the scheduler and N worker
slots on one store pool; ``nexq worker`` runs only the worker. The first
SIGTERM / SIGINT stops claiming and drains (running tasks get the grace
period, then are cancelled and handed back to run again at once); a second
signal stops at once (attempts are still handed back).
"""

from __future__ import annotations

import logging
import signal
from typing import Any

import attrs
import trio

from ..app import Nexq
from ..config import Settings
from .runtime import Runtime, open_runtime
from .scheduler import Scheduler
from .worker import Worker

log = logging.getLogger("nexq.service")


@attrs.define
class Service:
    """What ``run_service`` reports once started (``task_status.started``)."""

    runtime: Runtime
    worker: Worker | None
    port: int | None
    stop: trio.Event


async def run_service(
    settings: Settings,
    app: Nexq,
    *,
    api: bool = True,
    worker: bool = True,
    scheduler: bool = True,
    handle_signals: bool = True,
    task_status: Any = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run until stopped (signal, or ``Service.stop`` set); returns after draining."""
    async with open_runtime(settings, app) as rt:
        nodes = rt.broker.nodes
        for node in nodes:
            await node.store.ping()  # fail fast (StoreUnavailable) if a store is down
        app.bind(rt)
        stop = trio.Event()
        async with trio.open_nursery() as nursery:
            # One guard per node, in every process: each node refuses enqueues
            # near its own limit, and the account needs every process's changes.
            for guard in rt.guards:
                await nursery.start(guard.run)
            if scheduler:
                save = settings.save_interval if any(n.store.kind == "pogocache" for n in nodes) else 0.0
                await nursery.start(Scheduler(rt.broker, rt.cron, save_interval=save).run)
                if settings.reconcile_interval > 0:
                    await nursery.start(rt.reconciler.run)
            port = None
            if api:
                from ..api.server import serve_api

                port = await nursery.start(serve_api, rt, settings.host, settings.port)
            w = None
            if worker:
                w = Worker(rt, app, concurrency=settings.concurrency, queues=settings.queues,
                           poll_interval=settings.poll_interval)
            if handle_signals:
                nursery.start_soon(_signals, stop, nursery.cancel_scope)
            async with trio.open_nursery() as inner:
                if w is not None:
                    await inner.start(lambda task_status: w.run(grace=settings.shutdown_grace,
                                                               task_status=task_status))
                task_status.started(Service(rt, w, port, stop))
                await stop.wait()
                log.info("stopping: draining running tasks (grace %.0f s)", settings.shutdown_grace)
                if w is not None:
                    w.stop()
            nursery.cancel_scope.cancel()
        app.bind(None)


async def _signals(stop: trio.Event, scope: trio.CancelScope) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            if not stop.is_set():
                log.info("%s: stopping gracefully (again to stop at once)", signal.Signals(signum).name)
                stop.set()
            else:
                log.info("second signal: stopping now")
                scope.cancel()
                return
