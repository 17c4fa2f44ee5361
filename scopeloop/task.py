"""The scopeloop Task: an asyncio.Task that knows which cancel scope it is in.

Scope cancellation is delivered by the task itself, precisely and level-triggered,
while ``cancel()``/``uncancel()``/``cancelling()`` keep their stock meaning:

* A task blocked on a future is woken by cancelling *that future* with the scope's
  message.  No counter moves.
* A task that is ready to run with no future (after ``await sleep(0)``) can only be
  interrupted through the base ``Task.cancel()``; that bumps the C counter, so the
  task keeps a ledger of such *scope-owned* requests, hides them from
  ``cancelling()`` and withdraws them right after the step that consumed them.
* A task that is running right now (it cancelled its own scope) or has not started
  yet is left alone until its current step is over, then the decision is made again.

After every delivery a re-check runs right after the task's next step, so a task
that catches the CancelledError and awaits again is cancelled again (level
triggering) without any polling: the work is proportional to the task's steps.

This module owns delivery and withdrawal: ``deliver_below()`` finds every task a
scope's cancellation reaches (scope.py calls it when a scope is cancelled or a
shield drops), ``Task._deliver_scope_cancel()`` interrupts one task, and
``Task._withdraw_scope_requests()`` is the one routine that takes back what
delivery added to the C counter, called where an interrupt has been consumed (after
the task's step, in ``uncancel()`` while it runs, and by the scope that catches it).
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, Self

from ._cpython import not_started as _not_started
from ._cpython import waits_for_stdlib_group_children

if TYPE_CHECKING:
    from .scope import CancelScope

__all__ = ("Task", "current_scope_task")

_base_cancel = asyncio.Task.cancel
_base_cancelling = asyncio.Task.cancelling
_base_uncancel = asyncio.Task.uncancel
_current_task = asyncio.current_task
_new_task = asyncio.Task.__new__
_init_task = asyncio.Task.__init__

# Scopeloop's own callbacks read no context variables; running them all in one
# empty context spares a copy_context() per delivery.
_NO_CONTEXT = contextvars.Context()

# Mark a delivery that is queued to run after the task's current or next step:
# without interrupting anything yet, or after interrupting a ready task.
_QUEUED = object()
_INTERRUPTED = object()


class ScopeCancelMessage(str):
    """The message of a CancelledError raised by a cancel scope.

    It is a ``str`` (so it prints as the reason) whose type tells a scope's exit
    that the error came from scope delivery rather than a native ``cancel()``.
    """

    __slots__ = ()


def is_scope_cancel(exc: BaseException | None) -> bool:
    """Whether ``exc`` is a scope's CancelledError (level-triggered: the next
    checkpoint raises it again while the scope is cancelled), not a native one."""
    return (isinstance(exc, asyncio.CancelledError) and bool(exc.args)
            and isinstance(exc.args[0], ScopeCancelMessage))


def own_scope_bounds(task: asyncio.Task[Any]) -> tuple[CancelScope | None, CancelScope | None]:
    """``(outermost, spawned_into)``: the outermost scope ``task`` entered itself
    (None if it is in none of its own), and the scope above it, the one the task was
    spawned into (None for a task outside every task group)."""
    outermost = None
    scope = getattr(task, "_scope", None)  # (a plain asyncio Task has none)
    while scope is not None and scope._host is task:
        outermost = scope
        scope = scope._parent
    return outermost, scope


class Task(asyncio.Task):  # type: ignore[type-arg]
    """An asyncio Task that tracks its innermost cancel scope.

    Behaves exactly like ``asyncio.Task`` for code that does not use scopes.
    ``cancelling()`` counts native ``cancel()`` requests only, at every moment.
    """

    # The C Task's own state, readable from Python (annotated only, never assigned;
    # see _cpython.py, which checks at import that they exist).
    _fut_waiter: asyncio.Future[Any] | None
    _must_cancel: bool

    # Slots, not instance-dict attributes: the C Task's instance dict is not the
    # kind 3.12+ specialises attribute access for, so every read of ``_scope`` went
    # through the generic lookup (scope enter/exit on 3.13: -15% instructions).
    # Slots have no class-level default, so they are set when the task is made:
    # here for a Task built by its class (task factories), in make_task() for the
    # hot paths, which skip this Python-level __new__ (a Python-level __init__
    # would cost more than the rest of task creation: +25-50% on spawn/join).
    __slots__ = ("_scope", "_scope_owned", "_scope_pending", "_scope_exempt")

    def __new__(cls, *args: Any, **kwargs: Any) -> Self:
        self = _new_task(cls)
        self._scope = None
        self._scope_owned = 0
        self._scope_pending = None
        self._scope_exempt = None
        return self

    _scope: CancelScope | None  # the innermost scope this task is in
    _scope_owned: int  # base-counter requests added by scope delivery
    _scope_pending: object  # a queued re-check, or the future we cancelled
    # A future this task waits on that scope cancellation must not interrupt (a task
    # group waiting for its children, start() waiting for started()): the cheap
    # equivalent of a shield around one await.  Set by the waiter; it needs no
    # clearing, since it only matters while it is the future the task is blocked on
    # (``_fut_waiter``), and a done future is never that again.
    _scope_exempt: object

    @property
    def _parent_task(self) -> asyncio.Task[Any] | None:
        """The task that spawned this one into a task group (None for plain tasks).

        Found from the scope tree rather than stored: the host of the scope this
        task was spawned into.
        """
        scope = own_scope_bounds(self)[1]
        return None if scope is None else scope._host

    # -- the ledger: native requests only are visible -------------------------

    def cancelling(self) -> int:
        """Return the number of pending native ``cancel()`` requests."""
        return _base_cancelling(self) - self._scope_owned

    def uncancel(self) -> int:
        """Withdraw one native ``cancel()`` request; scope requests are not touched."""
        if _base_cancelling(self) > self._scope_owned:
            if self._scope_owned and _current_task(self._loop) is self:
                # Running: the scope interrupts those counts stand for were consumed
                # when this step began.  Drop them first, so that on 3.13 an
                # uncancel() to zero clears a pending native request as on a stock
                # Task (test_property_scopes: cancel + uncancel after a caught scope
                # cancellation left the native interrupt pending).
                self._withdraw_scope_requests()
            native = _base_uncancel(self) - self._scope_owned
            # A request that was pending when a scope was entered may be the one
            # withdrawn: each of the task's own scopes lowers its note of them.
            scope = self._scope
            while scope is not None and scope._host is self:
                scope._native_withdrawn(native)
                scope = scope._parent
            return native
        return 0

    # -- delivery ---------------------------------------------------------------

    def _cancelling_scope(self) -> CancelScope | None:
        """The innermost cancelled scope whose cancellation reaches this task."""
        return cancelled_region(self._scope)

    def _deliver_scope_cancel(self, batch: list[Task] | None = None,
                              again: bool = False, recheck: bool = False) -> None:
        """Interrupt this task at its next checkpoint if it is effectively cancelled.

        Safe to call at any time and any number of times: at most one delivery is
        in flight per task, and it re-decides after the task's next step.  A caller
        delivering to many tasks passes ``batch`` and schedules one re-check for all
        of them afterwards (``recheck_soon``): every wake-up caused here is queued
        before that re-check, so it still runs after each task's step.  ``again``:
        called from the re-check that follows an interruption.  ``recheck``: called
        from any re-check, which runs after the task's step.
        """
        pending = self._scope_pending
        if pending is not None:
            if ((pending is _INTERRUPTED or (isinstance(pending, asyncio.Future)
                                             and pending.cancelled()))
                    and _current_task(self._loop) is not self):
                # Interrupted, not woken yet, and a scope was cancelled since (or a
                # shield changed): the error on its way is that region's too, so the
                # scope that catches it must know it interrupted the task.  (Once the
                # task runs, the error is in flight and exits pass this on.)
                region = cancelled_region(self._scope)
                if region is not None:
                    region._note_interruption()
            return
        if self.done():
            return
        scope = cancelled_region(self._scope)
        if scope is None:
            return
        waiter = self._fut_waiter
        if waiter is None or (recheck and waiter.done() and not waiter.cancelled()
                              and waiter is not self._scope_exempt):
            # Ready to run with no future; or, seen from a re-check, about to be woken
            # by a future that completed after the task suspended on it, which was
            # after the previous decision, so in a cancelled region (the step that
            # cancelled its own scope, or one a delivery let it take).  Trio
            # interrupts a task at the moment it blocks there: a completion that got
            # in before this re-check (a callback queued earlier) must not win.
            # scopeloop's primitives keep what such a future carried (they look at
            # it when interrupted), as for a native cancel() in the same place.  A
            # cancelled future already brings a CancelledError (a native one, say).
            if not (_current_task(self._loop) is self or _not_started(self.get_coro())
                    or self._must_cancel):
                # Ready to run with nothing to cancel but the task itself.
                _base_cancel(self, scope._cancel_message())
                self._scope_owned += 1
                self._scope_pending = _INTERRUPTED
            else:
                # Running now, not yet started, or already about to be interrupted
                # natively; decide again once that step is over.
                self._scope_pending = _QUEUED
        elif waiter.done():
            # Its wake-up is already queued: the operation completed, let the task
            # see the result and interrupt it at its next checkpoint instead.
            self._scope_pending = _QUEUED
        elif waiter is self._scope_exempt or (again and waits_for_stdlib_group_children(self)):
            # An exempt wait is left alone; decide again once it is over.
            # asyncio.TaskGroup catches the CancelledError of its exit wait, aborts
            # its children and waits again: interrupting every such wait would only
            # spin until they finish.  It re-raises the first interruption when they
            # have, so wait for that instead.  It is recognised by the future it
            # waits on (_cpython.py, item 8), which costs a walk down the task's
            # coroutines: only after an interruption, `again`, can the task be back
            # there, so otherwise that is skipped.
            self._scope_pending = waiter
            waiter.add_done_callback(self._on_waiter_done, context=_NO_CONTEXT)
            return
        else:
            self._scope_pending = waiter
            waiter.cancel(scope._cancel_message())
        if batch is None:
            self._loop.call_soon(self._recheck, context=_NO_CONTEXT)
        else:
            batch.append(self)

    def _on_waiter_done(self, waiter: asyncio.Future[Any]) -> None:
        if self._scope_pending is waiter:
            self._recheck()

    def _recheck(self) -> None:
        """Runs after the step that a delivery made the task take."""
        waiter = self._fut_waiter
        if waiter is not None and waiter is self._scope_pending:
            # Still blocked on the future we cancelled: it is a task that has not
            # finished unwinding (or a future that refused), or its wake-up is
            # queued behind us.  Decide again right after that wake-up.
            if waiter.done():
                self._loop.call_soon(self._recheck, context=_NO_CONTEXT)
            else:
                waiter.add_done_callback(self._on_waiter_done, context=_NO_CONTEXT)
            return
        interrupted = self._scope_pending is not _QUEUED
        self._scope_pending = None
        if self._scope_owned and not self._must_cancel:
            self._withdraw_scope_requests()
        if not self.done():
            self._deliver_scope_cancel(again=interrupted, recheck=True)

    def _withdraw_scope_requests(self) -> None:
        """Remove the base-counter requests that scope delivery added.

        Only called once the interrupt they caused has been consumed (or the task is
        running, so it has been): on 3.13 an uncancel() to zero would otherwise also
        clear a pending interrupt.
        """
        for _ in range(self._scope_owned):
            _base_uncancel(self)
        self._scope_owned = 0


def make_task(coro: Coroutine[Any, Any, Any], loop: asyncio.AbstractEventLoop,
              name: str | None, context: contextvars.Context | None) -> Task:
    """``Task(coro, loop=loop, name=name, context=context)`` without the Python-level
    ``Task.__new__`` (spawning thousands of tasks: 3-5% of each spawn)."""
    # -- copy of Task.__new__ --
    task: Task = _new_task(Task)
    task._scope = None
    task._scope_owned = 0
    task._scope_pending = None
    task._scope_exempt = None
    # -- end of copy --
    _init_task(task, coro, loop=loop, name=name, context=context)
    return task


def exempt_wait(task: Task, waiter: asyncio.Future[Any]) -> None:
    """While ``task`` awaits ``waiter``, scope cancellation leaves the wait alone
    (a task group's exit, start()).  The exemption ends with the wait."""
    task._scope_exempt = waiter


def create_task_in(loop: asyncio.AbstractEventLoop, scope: CancelScope,
                   coro: Coroutine[Any, Any, Any], name: str | None,
                   context: contextvars.Context | None) -> asyncio.Task[Any]:
    """``loop.create_task()`` for a child spawned into ``scope``, through the loop's
    task factory: an eager task runs its first step inside this call, so its scope
    must be known before (``_EagerTask`` reads it from the loop)."""
    loop._spawn_scope = scope  # type: ignore[attr-defined]
    try:
        return loop.create_task(coro, name=name, context=context)
    finally:
        loop._spawn_scope = None  # type: ignore[attr-defined]


def cancelled_region(scope: CancelScope | None) -> CancelScope | None:
    """The innermost cancelled scope from ``scope`` up to the nearest shield, if any."""
    while scope is not None:
        if scope._cancel_called:
            return scope
        if scope._shield:
            return None
        scope = scope._parent
    return None


def deliver_below(top: CancelScope) -> None:
    """Deliver cancellation to every task that ``top``'s cancellation now reaches.

    Walks the host's scopes nested in ``top`` and, through the tasks spawned into
    each of them, their scopes in turn; a shield or an already cancelled scope ends
    a branch (the latter's tasks were reached when it was cancelled).  A group's
    children are visited in spawn order, which is their order in memory: visiting
    ten thousand of them in hash order costs twice as much in cache misses, for the
    walk and for every wake-up it queues.
    """
    host = top._host
    assert host is not None
    if top._spawned is None and host._scope is top:
        host._deliver_scope_cancel()  # the common case: a scope with no children
        return
    batch: list[Task] = []
    expand: list[CancelScope] = [top] if top._spawned else []
    _reach(host, top, expand, batch)
    while expand:
        scope = expand.pop()
        for child in tuple(scope._spawned):  # type: ignore[arg-type]
            if child._scope is scope:
                child._deliver_scope_cancel(batch)  # the common case: a group's child
            else:
                _reach(child, scope, expand, batch)
    recheck_soon(host._loop, batch)


def _reach(task: Task, root: CancelScope, expand: list[CancelScope],
           batch: list[Task]) -> None:
    """Deliver to ``task`` if ``root``'s cancellation reaches it through the scopes it
    entered inside ``root``; queue those of them that have children to ``expand``."""
    # One pass from the innermost scope outwards: a shield or an already cancelled
    # scope keeps the cancellation from the task and from every scope inside it.
    blocked = False
    reached: list[CancelScope] = []
    scope = task._scope
    while scope is not None and scope is not root:
        if scope._shield or scope._cancel_called:
            blocked = True
            reached.clear()
        elif scope._spawned:
            reached.append(scope)
        scope = scope._parent
    if scope is not root:
        return  # left the region already (e.g. moved by TaskGroup.start)
    expand.extend(reached)
    if not blocked:
        task._deliver_scope_cancel(batch)


def recheck_soon(loop: asyncio.AbstractEventLoop, batch: list[Task]) -> None:
    """Schedule one re-check for every task a batch of deliveries reached."""
    if batch:
        loop.call_soon(_recheck_all, batch, context=_NO_CONTEXT)


def _recheck_all(batch: list[Task]) -> None:
    for task in batch:
        task._recheck()


_FIX = ("run it with scopeloop.run(main), "
        "asyncio.run(main(), loop_factory=scopeloop.new_event_loop) (Python 3.12+), "
        "asyncio.Runner(loop_factory=scopeloop.new_event_loop), or "
        "asyncio.set_event_loop_policy(scopeloop.EventLoopPolicy()); "
        "for pytest-asyncio tests, run pytest with --scopeloop")


def current_scope_task(api: str = "this scopeloop API") -> Task:
    """Return the running scopeloop Task, or raise RuntimeError saying how to get one."""
    try:
        task = _current_task()
    except RuntimeError:
        raise RuntimeError(f"{api} needs a running event loop: {_FIX}") from None
    if task is None:
        raise RuntimeError(f"{api} must be used inside a task, not from a plain "
                           f"callback or another thread")
    if not isinstance(task, Task):
        loop = task.get_loop()
        if getattr(loop, "_is_scopeloop", False):
            why = (f"the loop's task factory {loop.get_task_factory()!r} creates "
                   f"{type(task).__qualname__} objects; use scopeloop.eager_task_factory "
                   f"or a factory that builds scopeloop.Task")
        else:
            why = f"the running loop {type(loop).__qualname__} is not a scopeloop loop; {_FIX}"
        raise RuntimeError(f"{api} needs a scopeloop Task, but {task.get_name()!r} is a "
                           f"{type(task).__module__}.{type(task).__qualname__}: {why}")
    return task


if sys.version_info >= (3, 12):
    class _EagerTask(Task):
        """A Task whose first step may run inside its constructor (eager start).

        A task group spawning through a task factory names the scope the child
        belongs to on the loop; it has to be in place before that first step, so
        this class (unlike Task, which avoids Python-level construction for speed)
        sets it in __new__.
        """

        def __new__(cls, coro: Any, *, loop: asyncio.AbstractEventLoop | None = None,
                    **kwargs: Any) -> _EagerTask:
            # In __new__, not __init__: the first step runs inside the C __init__,
            # and a Python frame below it that holds the task would be kept by the
            # traceback of a failing first step, a reference cycle through the task.
            self = super().__new__(cls)
            scope = getattr(loop, "_spawn_scope", None)
            if scope is not None:
                self._scope = scope
            return self

    # The stdlib's own factory over scopeloop's Task: AnyIO recognises it (by its
    # code) and then starts its tasks correctly; a look-alike function breaks that.
    eager_task_factory = asyncio.create_eager_task_factory(_EagerTask)
