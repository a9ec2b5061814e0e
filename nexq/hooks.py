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
from collections.abc import MutableSequence, Sequence
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

    def before_enqueue(self, node: NodeBroker, specs: Sequence[TaskSpec]) -> Sequence[TaskSpec] | None:
        """Validated tasks are about to be written; raise to refuse them all
        (``StoreFull``, or a ``ValueError`` naming the field). May return
        replacements, one per spec in order (same ids), to be written
        instead: e.g. with ``headers`` added (:mod:`nexq.otel`)."""

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

    Which middleware override which hook is worked out once here (as bound
    methods), so a hook nobody subscribes to costs one empty-tuple check and
    a subscribed one a direct call, on the hot path of every task.
    """

    def __init__(self, middleware: Sequence[Middleware] = ()) -> None:
        self.middleware = tuple(middleware)
        self._by = {n: tuple(getattr(m, n) for m in self.middleware
                             if getattr(type(m), n) is not getattr(Middleware, n))
                    for n in _NAMES}
        # before/after_process pair up by position: after_process runs for
        # the middleware up to (not including) the first whose before_process raised.
        self._before = tuple((i, m.before_process) for i, m in enumerate(self.middleware)
                             if type(m).before_process is not Middleware.before_process)
        self._after = tuple((i, m.after_process) for i, m in reversed(list(enumerate(self.middleware)))
                            if type(m).after_process is not Middleware.after_process)

    def extended(self, *more: Middleware) -> Hooks:
        """A new Hooks with ``more`` called after these."""
        return Hooks([*self.middleware, *more])

    def before_enqueue(self, node: NodeBroker, specs: Sequence[TaskSpec]) -> None:
        """Run ``before_enqueue`` in order; replacements a hook returns are
        put into ``specs`` in place (the list the producer then writes; a
        read-only sequence, passed by a check that writes nothing, keeps its
        own)."""
        current = specs
        for hook in self._by["before_enqueue"]:
            new = hook(node, current)
            if new is not None:
                if len(new) != len(current) or any(a.id != b.id for a, b in zip(new, current)):
                    raise TypeError(f"middleware {hook.__qualname__}: before_enqueue must return "
                                    "one replacement per spec, in order, with the same ids")
                current = new
        if current is not specs and isinstance(specs, MutableSequence):
            specs[:] = current

    async def after_enqueue(self, node: NodeBroker, specs: Sequence[TaskSpec]) -> None:
        if self._by["after_enqueue"]:
            await _each(self._by["after_enqueue"], node, specs)

    async def after_push(self, node: NodeBroker) -> None:
        if self._by["after_push"]:
            await _each(self._by["after_push"], node)

    async def after_claim(self, node: NodeBroker, specs: Sequence[TaskSpec], attempts: Sequence[int],
                          worker: str) -> None:
        if self._by["after_claim"]:
            await _each(self._by["after_claim"], node, specs, attempts, worker)

    async def after_decided(self, node: NodeBroker, spec: TaskSpec, attempt: Attempt) -> None:
        if self._by["after_decided"]:
            await _each(self._by["after_decided"], node, spec, attempt)
        if attempt.outcome in FAILED_OUTCOMES and self._by["on_failure"]:
            await _each(self._by["on_failure"], node, spec, attempt)

    async def after_terminal(self, node: NodeBroker, event: Terminal) -> None:
        if self._by["after_terminal"]:
            await _each(self._by["after_terminal"], node, event)
        if event.state == "dead" and self._by["on_dead"]:
            await _each(self._by["on_dead"], node, event.spec)

    async def before_process(self, ctx: Any) -> None:
        """Run ``before_process`` in order. If one raises, ``after_process``
        runs for the middleware before it (outcome None, the exception as
        error), then the exception propagates; else the caller must call
        :meth:`after_process` once the handler is done."""
        for i, hook in self._before:
            try:
                await hook(ctx)
            except BaseException as exc:
                await self.after_process(ctx, None, None, exc, 0.0, upto=i)
                raise

    async def after_process(self, ctx: Any, outcome: Outcome | None, result: Any,
                            error: BaseException | None, duration: float, upto: int | None = None) -> None:
        """Run ``after_process`` in reverse order (only for the middleware
        before position ``upto``, when given)."""
        for i, hook in self._after:
            if upto is None or i < upto:
                await _each((hook,), ctx, outcome, result, error, duration)

    async def after_heartbeat(self, running: Sequence[Claimed]) -> None:
        if self._by["after_heartbeat"]:
            await _each(self._by["after_heartbeat"], running)


async def _each(hooks: Sequence[Any], *args: Any) -> None:
    """Await each hook with ``args``; a subscriber's failure is logged and
    skipped: the queue's writes are done and must not be undone or
    interrupted by it (the next subscriber still runs)."""
    for hook in hooks:
        try:
            await hook(*args)
        except StoreError as exc:
            log.warning("middleware %s: %s", hook.__qualname__, exc)
        except Exception:
            log.exception("middleware %s failed", hook.__qualname__)
