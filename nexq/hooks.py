"""Middleware: the one way features plug into the queue and the worker.

The queue layer announces what happened through the hooks it is given when
it is built (:class:`Hooks`); it never imports a feature. Doorbells, the
event stream, webhooks, workflows, limits, metrics and a user's own
middleware (tracing, auditing, ...) subscribe by overriding the methods
they need on a :class:`Middleware` subclass::

    class Audit(nexq.Middleware):
        async def after_terminal(self, node, event):
            log.info("%s ended %s", event.spec.id, event.state)

    app = nexq.Nexq(store, middleware=[Audit()])

Queue-layer hooks get ``node``: the node broker on which it happened (its
public methods, such as ``enqueue_many``, may be used). Worker hooks get
the handler's :class:`nexq.Context`. A hook that raises in a queue-layer
``after_*`` method is logged and skipped: the queue's own writes are
already done and must not be undone by a subscriber.

Delivery: ``after_decided`` and ``after_terminal`` run in the process that
won the attempt's outcome, once, except that a follow-up redone after that
process died (the lease check, see docs/design.md) announces again: make
subscribers idempotent, as webhooks are (a unique key per event).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import attrs

from .errors import StoreError
from .task import Attempt, Outcome, TaskSpec

if TYPE_CHECKING:
    from .queue.node import NodeBroker
    from .queue.requests import Claimed

log = logging.getLogger("nexq.hooks")


@attrs.frozen
class Terminal:
    """A task reached a terminal state (``succeeded``, ``dead``, ``cancelled``)."""

    spec: TaskSpec
    attempt: int  # the last attempt's number
    state: str
    children: tuple[str, ...] = ()  # tasks that depend on this one (depends_on)


class Middleware:
    """Override any of these; each default does nothing."""

    # -- producing ------------------------------------------------------------

    def before_enqueue(self, node: NodeBroker, specs: Sequence[TaskSpec]) -> None:
        """Validated tasks are about to be written; raise to refuse them all
        (``StoreFull``, or a ``ValueError`` naming the field)."""

    async def after_enqueue(self, node: NodeBroker, specs: Sequence[TaskSpec]) -> None:
        """Tasks were created (each with its first state written)."""

    async def after_push(self, node: NodeBroker) -> None:
        """Attempts were pushed into ready lanes: workers may claim them now."""

    # -- running --------------------------------------------------------------

    async def after_claim(self, node: NodeBroker, specs: Sequence[TaskSpec], attempts: Sequence[int],
                          worker: str) -> None:
        """A worker leased these attempts and is about to run them."""

    async def after_decided(self, node: NodeBroker, spec: TaskSpec, attempt: Attempt) -> None:
        """The outcome of ``attempt`` was decided (by its worker, the lease
        reaper, a cancel or a deadline); the follow-up is being written."""

    async def after_terminal(self, node: NodeBroker, event: Terminal) -> None:
        """The task ended; its keys now expire after the retention."""

    async def before_process(self, ctx: Any) -> None:
        """The worker is about to call the handler (``ctx``: :class:`nexq.Context`).
        Raise :class:`nexq.errors.Defer` to run the attempt later without
        counting it against the retries."""

    async def after_process(self, ctx: Any, outcome: Outcome | None, result: Any,
                            error: BaseException | None, duration: float) -> None:
        """The handler returned or raised (``outcome`` None: it was
        cancelled, or its lease was lost). Runs for every attempt that
        passed ``before_process``."""

    async def after_heartbeat(self, running: Sequence[Claimed]) -> None:
        """The worker renewed the leases of its ``running`` attempts (every
        lease/3 seconds): renew anything held for them too."""

    # -- conveniences over after_decided / after_terminal ------------------------

    async def on_failure(self, node: NodeBroker, spec: TaskSpec, attempt: Attempt) -> None:
        """An attempt failed, timed out or was lost (it may be retried)."""

    async def on_dead(self, node: NodeBroker, spec: TaskSpec) -> None:
        """The task ran out of retries and is now a dead letter."""


FAILED_OUTCOMES = frozenset({Outcome.FAILED, Outcome.TIMEOUT, Outcome.LOST})
_NAMES = ("before_enqueue", "after_enqueue", "after_push", "after_claim", "after_decided",
          "after_terminal", "before_process", "after_process", "after_heartbeat", "on_failure", "on_dead")


class Hooks:
    """Calls each hook on the middleware that override it, in order.

    Which middleware override which hook is worked out once here, so a hook
    nobody subscribes to costs one empty-tuple check on the hot path.
    """

    def __init__(self, middleware: Sequence[Middleware] = ()) -> None:
        self.middleware = tuple(middleware)
        base = {n: getattr(Middleware, n) for n in _NAMES}
        self._by = {n: tuple(m for m in self.middleware if getattr(type(m), n) is not base[n])
                    for n in _NAMES}

    def extended(self, *more: Middleware) -> Hooks:
        """A new Hooks with ``more`` called after these."""
        return Hooks([*self.middleware, *more])

    def has(self, name: str) -> bool:
        return bool(self._by[name])

    def before_enqueue(self, node: NodeBroker, specs: Sequence[TaskSpec]) -> None:
        for m in self._by["before_enqueue"]:
            m.before_enqueue(node, specs)

    async def after_enqueue(self, node: NodeBroker, specs: Sequence[TaskSpec]) -> None:
        for m in self._by["after_enqueue"]:
            await _guarded(m.after_enqueue(node, specs), m, "after_enqueue")

    async def after_push(self, node: NodeBroker) -> None:
        for m in self._by["after_push"]:
            await _guarded(m.after_push(node), m, "after_push")

    async def after_claim(self, node: NodeBroker, specs: Sequence[TaskSpec], attempts: Sequence[int],
                          worker: str) -> None:
        for m in self._by["after_claim"]:
            await _guarded(m.after_claim(node, specs, attempts, worker), m, "after_claim")

    async def after_decided(self, node: NodeBroker, spec: TaskSpec, attempt: Attempt) -> None:
        for m in self._by["after_decided"]:
            await _guarded(m.after_decided(node, spec, attempt), m, "after_decided")
        if attempt.outcome in FAILED_OUTCOMES:
            for m in self._by["on_failure"]:
                await _guarded(m.on_failure(node, spec, attempt), m, "on_failure")

    async def after_terminal(self, node: NodeBroker, event: Terminal) -> None:
        for m in self._by["after_terminal"]:
            await _guarded(m.after_terminal(node, event), m, "after_terminal")
        if event.state == "dead":
            for m in self._by["on_dead"]:
                await _guarded(m.on_dead(node, event.spec), m, "on_dead")

    async def before_process(self, ctx: Any, passed: list[Middleware]) -> None:
        """Run ``before_process`` in order, appending each middleware that
        passed to ``passed`` (their ``after_process`` must run, even if a
        later one raised). Raises what a hook raised."""
        for m in self.middleware:
            if m in self._by["before_process"]:
                await m.before_process(ctx)
            passed.append(m)

    async def after_process(self, passed: Sequence[Middleware], ctx: Any, outcome: Outcome | None,
                            result: Any, error: BaseException | None, duration: float) -> None:
        for m in reversed(passed):
            if m in self._by["after_process"]:
                await _guarded(m.after_process(ctx, outcome, result, error, duration), m, "after_process")


    async def after_heartbeat(self, running: Sequence[Claimed]) -> None:
        for m in self._by["after_heartbeat"]:
            await _guarded(m.after_heartbeat(running), m, "after_heartbeat")


async def _guarded(call: Any, m: Middleware, hook: str) -> None:
    try:
        await call
    except StoreError as exc:
        log.warning("middleware %s.%s: %s", type(m).__name__, hook, exc)
    except Exception:
        # The queue's writes are done; a subscriber's failure must not undo
        # or interrupt them (the next subscriber still runs).
        log.exception("middleware %s.%s failed", type(m).__name__, hook)
