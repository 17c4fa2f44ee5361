"""Cancel scopes with deadlines and shields, and the timeout helpers built on them.

A scope is a node in a tree: ``_parent`` is the scope that was innermost in the host
task when it was entered (for a task's outermost scope, the scope the task was
spawned into).  Scopes are entered and exited by moving the host task's innermost
pointer, so both are O(1).  This module owns the tree: besides ``__enter__`` and
``__exit__``, only its tree operations (``adopt``, ``transfer``, ``interpose``,
``enter_for``/``exit_for``, ``open_children``/``close_children``) write its links,
and task groups, ``start()`` and task handles move tasks and scopes through them.

Cancelling a scope hands it to ``task.deliver_below``, which walks down the part of
the tree below it (stopping at shields and at scopes that are already cancelled)
and has each task it reaches deliver to itself (``Task._deliver_scope_cancel``).  No
per-iteration work exists: a task whose region is cancelled costs nothing until it
takes a step.

The scope that swallows a scope-delivered CancelledError is the outermost cancelled
scope of the region (the one whose parent's cancellation it cannot see, because the
parent is not cancelled or this scope is shielded), as in Trio.  It knows the error
is its region's because the region interrupted a task (``_interrupted``), not by the
error's message: third-party code may raise a fresh one, or wrap it in an exception
group, from which the scope takes its cancellations out.
"""

from __future__ import annotations

import math
from asyncio import CancelledError, TimerHandle, get_running_loop
from types import TracebackType
from typing import Any

from ._asyncgen import asyncgen_hint
from .task import (
    _NO_CONTEXT,
    ScopeCancelMessage,
    Task,
    _base_cancelling,
    _current_task,
    cancelled_region,
    current_scope_task,
    is_scope_cancel,
    own_scope_bounds,
    deliver_below,
)

__all__ = (
    "CancelScope", "move_on_after", "move_on_at", "fail_after", "fail_at",
    "current_effective_deadline",
)

_DEADLINE_REASON = "deadline exceeded"
# Set on a CancelledError that a scope swallowed.
_CAUGHT = "_scopeloop_caught"


_INF = math.inf
# Scope states (plain ints: compared on every enter and exit).
_CREATED, _ENTERED, _EXITED = 0, 1, 2
_STATE_NAMES = ("created", "entered", "exited")


class CancelScope:
    """A region of code that can be cancelled as a whole, like Trio's CancelScope.

    While a task is inside a cancelled scope (and no shielded scope stands between
    it and the cancelled one), every checkpoint raises ``asyncio.CancelledError``.
    The outermost cancelled scope of the region catches that error on exit and sets
    ``cancelled_caught``.  Native ``Task.cancel()`` requests are never swallowed.
    """

    # Class-level defaults: a scope that is never cancelled and has no deadline
    # (the common case) only ever writes the few attributes that enter/exit need.
    _deadline = _INF
    _shield = False
    _cancel_called = False
    _cancel_reason: str | None = None
    _cancelled_by: str | None = None  # the name of the task that called cancel()
    _cancelled_caught = False
    _state = _CREATED
    _host: Task | None = None
    _parent: CancelScope | None = None
    # Tasks spawned into this scope (a group's children), in spawn order.
    _spawned: dict[Task, None] | None = None
    _timer: TimerHandle | None = None
    _native_at_enter = 0  # the host's native cancel count when it entered
    _message: ScopeCancelMessage | None = None
    # True once this scope's cancellation interrupted a task (or, passed on at exit,
    # a cancelled scope inside it did): what tells its exit that a CancelledError
    # reaching it, whatever its message, is this region's.
    _interrupted = False
    # True once a task group inside this region raised errors that stand for the
    # region's cancellations too (children or the body that ended with it): the
    # errors leave through this scope, and so, as in Trio, does the cancellation
    # this scope catches (DESIGN §3.3 keeps it out of the error group itself).
    _caught_in_errors = False
    _deadline_fired = False
    # move_on_after/fail_after: the delay, until entering turns it into a deadline.
    _relative: float | None = None

    def __init__(self, *, deadline: float = _INF, shield: bool = False) -> None:
        if deadline is not _INF:
            # (The type test spares a call for the common case, a float deadline.)
            self._deadline = (deadline if type(deadline) is float and deadline == deadline
                              else _check_deadline(deadline))
        if shield:
            self._shield = _check_shield(shield)

    # -- entering and leaving -------------------------------------------------

    def __enter__(self) -> CancelScope:
        if self._state is not _CREATED:
            raise RuntimeError("this CancelScope has already been entered; "
                               "create a new CancelScope for each 'with' block")
        try:
            task = _current_task()
        except RuntimeError:
            # No running loop: let current_scope_task() say how to get one, rather
            # than asyncio's bare "no running event loop" (DESIGN §3.6).
            task = None
        if type(task) is not Task:
            task = current_scope_task("CancelScope")  # a subclass, or a clear error
        self._host = task
        self._parent = task._scope
        task._scope = self
        self._native_at_enter = _base_cancelling(task) - task._scope_owned
        self._state = _ENTERED
        if self._cancel_called:
            if self._relative is not None:
                # No timer for a cancelled scope, but fail_after still needs its
                # deadline to tell whether the block outlived it.
                self._deadline = task._loop.time() + self._relative
                self._relative = None
            task._deliver_scope_cancel()
        elif self._relative is not None or self._deadline is not _INF:
            self._arm_deadline()
        return self

    def __exit__(self, exc_type: type[BaseException] | None,
                 exc: BaseException | None, tb: TracebackType | None) -> bool:
        task = self._host
        if self._state is not _ENTERED or task is None:
            raise RuntimeError("this CancelScope is not active: it was never entered "
                               "or has already been exited." + asyncgen_hint("scope", self))
        if task._scope is not self or _current_task() is not task:
            self._exit_misused(task)
        self._state = _EXITED
        # An exited scope forgets its task: whoever keeps the scope (or its group)
        # must not keep the task, and through it the task's exception, alive.
        self._host = None
        task._scope = parent = self._parent
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not (self._cancel_called or self._shield):
            return False
        if self._cancel_called:
            if self._shield or cancelled_region(parent) is None:
                return self._catch(exc, task, parent)
            if self._interrupted:
                self._pass_on_interrupted(parent)  # (the region goes on outside)
            if self._caught_in_errors and exc is not None:
                _mark_caught_in_errors(parent)  # (so do the errors that carry it)
        if parent is not None:
            # Leaving a shield (or our own cancelled region) into a cancelled region:
            # the next checkpoint raises.
            task._deliver_scope_cancel()
        return False

    def _catch(self, exc: BaseException | None, task: Task,
               parent: CancelScope | None) -> bool:
        """Exit as the scope that catches its cancelled region's CancelledError."""
        rest = self._uncaught(exc, task)
        if rest is not exc or (rest is not None and self._caught_in_errors):
            self._cancelled_caught = True
            if task._scope_owned and not task._must_cancel:
                task._withdraw_scope_requests()
        if parent is not None and (self._shield or rest is not None):
            if rest is not None and self._interrupted:
                self._pass_on_interrupted(parent)  # (let through)
            task._deliver_scope_cancel()
        if rest is None:
            return True
        if rest is exc:
            return False
        # An exception group from which our cancellations were taken out: raise the
        # rest, keeping the context split() copied (raising here would make it
        # the original group).
        context = rest.__context__
        try:
            raise rest
        finally:
            rest.__context__ = context
            del rest, context

    def _pass_on_interrupted(self, parent: CancelScope | None) -> None:
        """A cancellation of ours leaves this scope: so does the knowledge that it
        interrupted a task, for the scope that catches it outside (see _uncaught)."""
        region = cancelled_region(parent)
        if region is not None:
            region._interrupted = True

    def _uncaught(self, exc: BaseException | None, task: Task) -> BaseException | None:
        """What is left of ``exc`` once this scope's cancellation is taken out of it.

        Recognised by what is known about the task rather than by the exception's
        message, which third-party code loses (asyncpg raises a fresh CancelledError
        from ours): the cancellation is this region's if the region interrupted a
        task (``_interrupted``) and no native request arrived since this scope was
        entered (``Task.uncancel()`` lowers ``_native_at_enter`` when it withdraws
        a request counted there).  Then every CancelledError is ours, alone or
        inside an exception group (``except*``, task groups), as in Trio.  A
        CancelledError raised by hand where nothing was interrupted is not.
        """
        if exc is None or not self._interrupted:
            return exc
        if _base_cancelling(task) - task._scope_owned > self._native_at_enter:
            return exc  # a native request arrived meanwhile: it must propagate
        if isinstance(exc, CancelledError):
            # Consumed: a TimeoutError made from it (fail_after's) is no scope's.
            setattr(exc, _CAUGHT, True)
            return None
        if type(exc) is TimeoutError:
            # asyncio.timeout/wait_for converts any CancelledError that reaches it
            # once its own timer fired; if that was a scope's interruption rather
            # than the timeout's own, it is still ours.  Only the converted error
            # tells which it was (both can be due in one step).  One that a scope
            # caught is not ours: fail_after's TimeoutError passes unchanged.
            cause = exc.__cause__
            if is_scope_cancel(cause) and not getattr(cause, _CAUGHT, False):
                return None
            return exc
        if isinstance(exc, BaseExceptionGroup):
            matched, rest = exc.split(CancelledError)
            return exc if matched is None else rest
        return exc

    def _exit_misused(self, task: Task) -> None:
        """Report an exit from the wrong task, or out of order (after unwinding)."""
        if _current_task() is not task:
            raise RuntimeError(wrong_task_message("CancelScope", "with CancelScope()", task)
                               + asyncgen_hint("scope", self))
        inner = task._scope
        still_open = []
        while inner is not None and inner is not self and inner._host is task:
            still_open.append(inner)
            inner._state = _EXITED
            if inner._timer is not None:
                inner._timer.cancel()
                inner._timer = None
            inner = inner._parent
        if inner is self:
            task._scope = self._parent
            self._state = _EXITED
        raise RuntimeError(
            "cancel scopes must be exited in the reverse order they were entered "
            "(the innermost first); a scope was exited while a scope entered after it "
            "was still active. Use nested 'with' blocks rather than calling "
            "__enter__/__exit__ by hand." + asyncgen_hint("inner scope", self, still_open))

    # -- cancelling ---------------------------------------------------------------

    def cancel(self, reason: str | None = None) -> None:
        """Cancel this scope: every checkpoint inside it raises CancelledError.

        ``reason`` is included in the CancelledError's message.  Cancelling a scope
        that has exited does nothing.
        """
        if self._cancel_called:
            return
        self._cancel_called = True
        self._cancel_reason = reason
        if reason is not _DEADLINE_REASON:  # (a deadline fires in no task)
            self._cancelled_by = _canceller_name()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._state is _ENTERED:
            deliver_below(self)

    def _note_interruption(self) -> None:
        """A task was interrupted for this scope: a CancelledError reaching its exit,
        whatever its message, is this region's (see ``_uncaught``)."""
        self._interrupted = True

    def _native_withdrawn(self, native: int) -> None:
        """The host's native requests fell to ``native`` (``Task.uncancel``): lower
        the note of those pending at enter, or a request arriving afterwards would
        look like the withdrawn one and this scope would swallow it."""
        if self._native_at_enter > native:
            self._native_at_enter = native

    def _cancel_message(self) -> ScopeCancelMessage:
        """The message of a CancelledError that interrupts a task for this scope.

        Every interruption made for this scope asks for it (delivery, and the task
        group's exit and start() when they raise for the region), so this is where
        the scope records that it interrupted a task.
        """
        self._interrupted = True
        if self._message is None:
            # AnyIO's wording, which code and tests match.
            text = f"Cancelled via cancel scope {id(self):x}"
            if self._cancelled_by is not None:
                text += f" by task {self._cancelled_by!r}"
            if self._cancel_reason:
                text += f"; reason: {self._cancel_reason}"
            self._message = ScopeCancelMessage(text)
        return self._message

    def _effectively_cancelled(self) -> bool:
        return cancelled_region(self) is not None

    # -- deadline -----------------------------------------------------------------

    def _arm_deadline(self) -> None:
        """(Re)start the deadline timer; a deadline already past cancels at once.

        A delay from move_on_after/fail_after becomes a deadline here, when the
        scope is entered (as in Trio): one clock read serves both.
        """
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._cancel_called:
            return
        assert self._host is not None
        loop = self._host._loop
        if self._relative is not None:
            now = loop.time()
            self._deadline = now + self._relative
            self._relative = None
        elif self._deadline == _INF:
            return
        else:
            now = loop.time()
        if self._deadline <= now:
            self._on_deadline()
        elif self._deadline != _INF:
            self._timer = loop.call_at(self._deadline, self._on_deadline, context=_NO_CONTEXT)

    def _on_deadline(self) -> None:
        self._timer = None
        self._deadline_fired = True
        self.cancel(_DEADLINE_REASON)

    # -- properties ---------------------------------------------------------------

    @property
    def deadline(self) -> float:
        """The ``loop.time()`` at which this scope cancels itself (``math.inf``: never).

        A scope made by ``move_on_after``/``fail_after`` counts its delay from when it
        is entered; read before that, the deadline is fixed from the moment of reading.
        """
        if self._relative is not None:
            self._deadline = current_scope_task("CancelScope.deadline")._loop.time() \
                + self._relative
            self._relative = None
        return self._deadline

    @deadline.setter
    def deadline(self, value: float) -> None:
        self._deadline = _check_deadline(value)
        self._relative = None
        if self._state is _ENTERED:
            self._arm_deadline()

    @property
    def shield(self) -> bool:
        """True if cancellation from enclosing scopes is kept out of this scope."""
        return self._shield

    @shield.setter
    def shield(self, value: bool) -> None:
        value = _check_shield(value)
        if value == self._shield:
            return
        self._shield = value
        if (not value and self._state is _ENTERED and not self._cancel_called
                and self._parent is not None and self._parent._effectively_cancelled()):
            deliver_below(self)

    @property
    def cancel_called(self) -> bool:
        """True once ``cancel()`` was called or the deadline passed."""
        return self._cancel_called

    @property
    def cancelled_caught(self) -> bool:
        """True if this scope swallowed the CancelledError it caused."""
        return self._cancelled_caught

    def __repr__(self) -> str:
        parts = [_STATE_NAMES[self._state]]
        if self._cancel_called:
            parts.append("cancelled" + (f" ({self._cancel_reason})" if self._cancel_reason else ""))
        if self._shield:
            parts.append("shield")
        if self._relative is not None:
            parts.append(f"deadline=entry+{self._relative:.3f}")
        elif self._deadline != _INF:
            parts.append(f"deadline={self._deadline:.3f}")
        return f"<CancelScope {id(self):x} {' '.join(parts)}>"


def wrong_task_message(what: str, block: str, host: Task) -> str:
    """The error for exiting ``what`` (entered by ``host``) from another task."""
    current = _current_task()
    where = f"in {current.get_name()!r}" if current is not None else "outside any task"
    # AnyIO's sentence first (code and tests match it), then how to fix it.
    return (f"Attempted to exit cancel scope in a different task than it was entered in: "
            f"a {what} must be exited in the task that entered it ({host.get_name()!r}), "
            f"not {where}; keep each '{block}' block inside one task.")


def _canceller_name() -> str | None:
    """The name of the running task, for a cancellation's message (None outside one)."""
    try:
        task = _current_task()
    except RuntimeError:  # no running loop
        return None
    return None if task is None else task.get_name()


# -- the tree's operations ----------------------------------------------------------
# Besides CancelScope's own __enter__ and __exit__, these are the only code that
# writes the tree's links (Task._scope, a scope's _host, _parent, _state and
# _spawned): groups, start() and task handles move tasks and scopes with them.

def adopt(task: Task, scope: CancelScope) -> None:
    """Make ``task``, which has not run yet, a child spawned into ``scope``.

    The fast case of ``transfer()``, for every spawn: a new task has no scopes of
    its own to walk past and is in no scope's children yet.
    """
    task._scope = scope
    if cancelled_region(scope) is not None:
        task._deliver_scope_cancel()  # it starts, and raises at its first checkpoint
    scope._spawned[task] = None  # type: ignore[index]


def transfer(task: Task, scope: CancelScope, source: CancelScope | None = None) -> None:
    """Move ``task``, with the scopes it entered itself, from ``source`` into ``scope``.

    With no ``source``, the task was in no scope's children yet (an eager task
    that ran its first step inside create_task()).  If the new region is
    cancelled, the task's next checkpoint raises.
    """
    if source is not None:
        source._spawned.pop(task, None)  # type: ignore[union-attr]
        if task._scope is source:
            task._scope = scope  # the common case: no scopes of its own to walk past
        else:
            _hang(task, scope)
    else:
        _hang(task, scope)
    scope._spawned[task] = None  # type: ignore[index]
    if cancelled_region(task._scope) is not None:
        task._deliver_scope_cancel()


def interpose(task: Task, scope: CancelScope) -> None:
    """Enter ``scope`` for ``task`` around all of its code: below the scope the task
    was spawned into, above every scope the task entered itself."""
    scope._host = task
    scope._parent = _hang(task, scope)
    scope._state = _ENTERED


def open_children(scope: CancelScope, children: dict[Task, None]) -> None:
    """Let tasks be spawned into ``scope``; ``children`` is where they are kept."""
    scope._spawned = children


def close_children(scope: CancelScope) -> None:
    """No more tasks are spawned into ``scope`` (all of its children have ended)."""
    scope._spawned = None


def enter_for(scope: CancelScope, task: Task) -> None:
    """Enter ``scope`` as ``task``'s innermost scope, from outside the task.

    For a scope the task runs no code of its own in (start()'s starter): none of
    ``__enter__``'s checks or deadline handling apply.
    """
    scope._host = task
    scope._parent = task._scope
    scope._state = _ENTERED
    scope._spawned = {}
    task._scope = scope


def exit_for(scope: CancelScope, task: Task) -> None:
    """Leave a scope entered with ``enter_for()``; its children must have moved."""
    task._scope = scope._parent
    scope._state = _EXITED
    scope._spawned = None


def _hang(task: Task, scope: CancelScope) -> CancelScope | None:
    """Put ``scope`` above the outermost scope ``task`` entered itself (or make it
    the task's scope if it entered none); returns what was there before."""
    outermost, above = own_scope_bounds(task)
    if outermost is None:
        task._scope = scope
    else:
        outermost._parent = scope
    return above


def _check_deadline(value: Any) -> float:
    return _check_number(value, "deadline", "(loop.time() seconds)")


def _check_shield(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"shield must be a bool, not {type(value).__name__}")
    return value


def _check_delay(delay: Any) -> float:
    return _check_number(delay, "delay", "of seconds")


def _check_number(value: Any, name: str, unit: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number {unit}, not {type(value).__name__}")
    if math.isnan(value):
        raise ValueError(f"{name} must not be NaN")
    return float(value)


class _FailScope(CancelScope):
    """A CancelScope that raises TimeoutError when it caught a cancellation and its
    deadline has passed.

    AnyIO's rule rather than Trio's: the deadline decides, not who cancelled.  A
    block cancelled by ``cancel()`` that then outlives its deadline (in a shielded
    cleanup, say) did not finish in time, so it fails; Trio's fail_after would
    raise even if the deadline had not passed.  (README: deliberate differences.)
    """

    # fail_after/fail_at(reason=...): the TimeoutError's message instead of ours.
    _timeout_reason: str | None = None

    def __exit__(self, exc_type: type[BaseException] | None,
                 exc: BaseException | None, tb: TracebackType | None) -> bool:
        swallowed = super().__exit__(exc_type, exc, tb)
        # (A scope exited with no exception "swallows" nothing: it caught nothing.)
        if swallowed and exc is not None and (self._deadline_fired or self._deadline_passed()):
            raise TimeoutError(self._timeout_reason
                               or f"deadline of {self._deadline:.3f} exceeded") from exc
        return swallowed

    def _deadline_passed(self) -> bool:
        # Only read the clock for a scope that caught a cancellation by cancel().
        # (It runs in __exit__, in the scope's task: the running loop is its loop.)
        return (self._deadline != _INF
                and get_running_loop().time() >= self._deadline)


def _after(cls: type[CancelScope], delay: float | None, shield: bool) -> CancelScope:
    """A ``cls`` scope whose deadline is ``delay`` seconds after it is entered."""
    scope: CancelScope = object.__new__(cls)  # (no __init__: nothing else to set)
    if delay is not None:
        if not (type(delay) is float and delay == delay or type(delay) is int):
            delay = _check_delay(delay)  # (a call only for the unusual)
        scope._relative = delay
    if shield:
        scope._shield = _check_shield(shield)
    return scope


def _check_reason(reason: Any) -> str | None:
    if reason is not None and not isinstance(reason, str):
        raise TypeError(f"reason must be a str or None, not {type(reason).__name__}")
    return reason


def move_on_at(deadline: float | None, shield: bool = False) -> CancelScope:
    """A scope that is cancelled at ``deadline`` (``loop.time()`` seconds; None: never).

    No error: the block is left and ``cancelled_caught`` is set.
    """
    return CancelScope(deadline=_INF if deadline is None else deadline, shield=shield)


def move_on_after(delay: float | None, shield: bool = False) -> CancelScope:
    """A scope that is cancelled ``delay`` seconds after it is entered (None: never).

    No error: the block is left and ``cancelled_caught`` is set.
    """
    return _after(CancelScope, delay, shield)


def fail_at(deadline: float | None, shield: bool = False,
            reason: str | None = None) -> CancelScope:
    """Like ``move_on_at``, but raise TimeoutError if the deadline cancels the block.

    ``reason``, if given, is the TimeoutError's message.
    """
    scope = _FailScope(deadline=_INF if deadline is None else deadline, shield=shield)
    if reason is not None:
        scope._timeout_reason = _check_reason(reason)
    return scope


def fail_after(delay: float | None, shield: bool = False,
               reason: str | None = None) -> CancelScope:
    """Like ``move_on_after``, but raise TimeoutError if the deadline cancels the block.

    ``reason``, if given, is the TimeoutError's message.
    """
    scope = _after(_FailScope, delay, shield)
    if reason is not None:
        scope._timeout_reason = _check_reason(reason)  # type: ignore[attr-defined]
    return scope


def current_effective_deadline() -> float:
    """The earliest deadline that applies to the current task.

    ``-inf`` if the task is already in a cancelled region; ``inf`` if no deadline.
    """
    scope = current_scope_task("current_effective_deadline()")._scope
    deadline = math.inf
    while scope is not None:
        if scope._cancel_called:
            return -math.inf
        deadline = min(deadline, scope._deadline)
        if scope._shield:
            break
        scope = scope._parent
    return deadline


def record_caught_with_errors(scope: CancelScope) -> None:
    """Errors are leaving ``scope``, which exited, beside its own cancellation (a
    group's child or body ended with it): as in Trio, the scope that catches that
    cancellation records it although the errors pass through."""
    if scope._shield or cancelled_region(scope._parent) is None:
        scope._cancelled_caught = True
    else:
        _mark_caught_in_errors(scope._parent)


def _mark_caught_in_errors(scope: CancelScope | None) -> None:
    """Errors leaving a task group carry a cancellation of the region ``scope`` is
    in: mark the scope that catches that region (the outermost cancelled scope up
    to the nearest shield), which records it when the errors pass through."""
    catcher = None
    while scope is not None:
        if scope._cancel_called:
            catcher = scope
        if scope._shield:
            break
        scope = scope._parent
    if catcher is not None:
        catcher._caught_in_errors = True
