"""The wait queue under the synchronisation primitives and the memory object streams
(in the spirit of Trio's ParkingLot), and the checkpoint rules of an operation that
may wait in one.

State owned here:

* ``WaitQueue``: the waiters of one primitive or one side of a stream, oldest first.
  Each entry is a tuple whose first element is the waiter's own future; the rest is
  what the granting side needs to know (the task that will own a lock, the borrower of
  a token, a sender's item and handle).  The queue's operations are the only code
  that grants a waiter or withdraws one, except for the stream hot paths, which pop
  the same deque inline (marked there as copies of ``grant``).
* ``_owed``: native cancellations that arrived after an operation completed and wait
  to be re-delivered (before 3.13 only; see ``redeliver``).
* ``_last_seen``: the 3.11 fast path of ``running_task``.

The protocol is that of the streams' and primitives' docstrings: the state of a
waiter's future is the exact knowledge every decision needs.

* A waiter whose future is already done is being cancelled (the loop cancels the
  future a task is blocked on to interrupt it): ``grant`` skips it, so the grant goes
  to the next waiter.
* A waiter whose future got a result was granted.  If it is interrupted before it
  runs again, ``interrupted`` says so and the caller keeps the grant (a stream item
  that was handed over) or gives it back (a lock, a token, a notification), as each
  primitive needs; it is never lost.  Otherwise ``interrupted`` cancels the future, so
  nobody can grant it any more, and takes the entry off the queue.
"""

from __future__ import annotations

import sys
import types
from collections import deque
from collections.abc import Callable, Generator
from typing import Any

from ._cpython import CURRENT_TASKS, UNCANCEL_CLEARS_PENDING
from .task import _NO_CONTEXT, ScopeCancelMessage, _current_task, is_scope_cancel

__all__ = ("WaitQueue", "running_task", "will_raise", "arm_owed", "redeliver",
           "schedule_point", "is_scope_cancel")


class WaitQueue(deque[Any]):
    """Waiter entries ``(future, ...)``, oldest first.

    A deque, so the streams' hot paths can ``popleft()`` without a method call; every
    other grant goes through ``grant`` and ``grant_all``.
    """

    # No __slots__ and no __init__: creating one is deque's C constructor only (an
    # Event is often created per use), and the instance dict appears only once a
    # waiter has been interrupted.

    # Interrupted waiters since the last compaction.  Their entries stay where they
    # are (grant skips them) until they are half the queue, so withdrawing a waiter
    # is O(1) amortised in any order, as in Trio's ParkingLot.
    _dropped = 0

    def grant(self, result: Any) -> Any:
        """Set ``result`` on the oldest waiter still waiting; return its entry.

        Waiters whose future is done (being cancelled) are dropped on the way.
        Returns None if nobody is waiting.
        """
        while self:
            entry = self.popleft()
            if not entry[0].done():
                entry[0].set_result(result)
                return entry
        return None

    def grant_all(self, result: Any) -> None:
        """Set ``result`` on every waiter still waiting, and empty the queue."""
        for entry in self:
            if not entry[0].done():
                entry[0].set_result(result)
        self.clear()

    def grant_matching(self, result: Any, match: Callable[[Any], bool]) -> None:
        """Set ``result`` on every waiting entry for which ``match(entry)`` is true and
        take those entries off the queue (e.g. the waiters of one closed handle)."""
        for entry in [entry for entry in self if match(entry)]:
            self.remove(entry)
            if not entry[0].done():
                entry[0].set_result(result)

    def interrupted(self, entry: Any) -> bool:
        """The waiter of ``entry`` was interrupted: True if it had been granted.

        If not, its future is cancelled, so a later grant skips the entry (which is
        dropped from the queue then, or when such entries are half of it).  If so,
        the caller owns the grant and must keep it or give it back.
        """
        fut = entry[0]
        if fut.done() and not fut.cancelled():
            return True
        fut.cancel()
        self._dropped += 1
        if 2 * self._dropped > len(self):
            live = [entry for entry in self if not entry[0].done()]
            self.clear()
            self.extend(live)
            self._dropped = 0
        return False

    def waiting(self) -> int:
        """How many waiters are really waiting (not being cancelled)."""
        return sum(not entry[0].done() for entry in self)


# --- the running task --------------------------------------------------------------

running_task: Callable[[], Any]  # the running task (None outside one)
if sys.version_info >= (3, 12):
    running_task = _current_task
else:
    from threading import get_ident

    assert CURRENT_TASKS is not None
    _current_tasks = CURRENT_TASKS  # loop -> stepping task (_cpython.py, item 6)

    _last_seen: tuple[Any, int] = (None, 0)  # (loop, thread) of the last task found

    def _running_task_311() -> Any:
        """``asyncio.current_task()`` without its getpid() system call (3.11 only).

        While exactly one task in the process is inside a step and it belongs to the
        loop this thread ran last, it is the caller.  Anything else takes the stock
        route.
        """
        global _last_seen
        loop, thread = _last_seen
        if len(_current_tasks) == 1 and thread == get_ident():
            task = _current_tasks.get(loop)
            if task is not None:
                return task
        task = _current_task()
        if task is not None:
            _last_seen = (task._loop, get_ident())
        return task

    running_task = _running_task_311


def forget_loop(loop: Any) -> None:
    """``loop`` has stopped running: the running-task cache must not keep it alive
    (a closed loop kept by the 3.11 cache would hold everything it referenced)."""
    if sys.version_info < (3, 12):
        global _last_seen
        if _last_seen[0] is loop:
            _last_seen = (None, 0)


# --- the cancel point at the start of an operation ---------------------------------

def no_scope_or_raise(task: Any) -> Any:
    """The scope of a task that has no ``_scope``: None for a plain asyncio Task (only
    native cancellation applies), RuntimeError outside a task."""
    if task is None:
        raise RuntimeError("scopeloop streams and synchronisation primitives "
                           "must be used inside a task")
    return None


def will_raise(task: Any) -> bool:
    """True if ``task``'s next checkpoint raises CancelledError.

    Arms a native cancellation that a completed operation owes the task (see
    ``arm_owed``), so the caller's checkpoint raises it.  The memory streams'
    ``send()`` and ``receive()`` hold marked copies of this (a call there is 3-5% of
    a ping-pong round trip); tests/test_hot_path_copies.py checks they agree.
    """
    try:
        scope = task._scope
    except AttributeError:
        scope = no_scope_or_raise(task)
    while scope is not None:
        if scope._cancel_called:
            return True
        if scope._shield:
            break
        scope = scope._parent
    return bool(task._must_cancel) or bool(_owed) and arm_owed(task)


# --- a native cancellation that arrived after the operation completed --------------

# Before 3.13: native cancellations that a completed operation took and that wait to
# be re-delivered (see redeliver), task -> (cancelling() then, message).  Streams and
# primitives call arm_owed() where they check for cancellation, so a task looping on
# operations that complete at once (each ending in a schedule point) still gets it.
_owed: dict[Any, tuple[int, Any]] = {}


def arm_owed(task: Any) -> bool:
    """Arm the native cancellation owed to ``task``, unless it was withdrawn since.

    Called at the start of an operation, before it does anything: the caller's
    checkpoint then raises it, so nothing is left armed for a later await to trip on.
    """
    token = _owed.pop(task, None)
    if token is None or task.cancelling() < token[0]:
        return False
    task.cancel(token[1])
    task.uncancel()  # the request is already counted
    return True


def redeliver(task: Any, exc: BaseException) -> None:
    """A native cancel() arrived after this task's operation completed: deliver it at
    the task's next suspension instead, unless it is withdrawn with uncancel() first."""
    msg = exc.args[0] if exc.args else None
    if isinstance(msg, ScopeCancelMessage):
        return  # scope cancellation is level-triggered: the next checkpoint raises anyway
    if UNCANCEL_CLEARS_PENDING:
        # Pending until the task next suspends; an uncancel() to zero withdraws it, and
        # if the task returns first it ends cancelled, as with any pending cancel().
        task.cancel(msg)
        task.uncancel()
    elif task.cancelling():
        # Before 3.13 uncancel() cannot withdraw a pending interrupt, and a withdrawn
        # one would still fire (asyncio.timeout's exit withdraws its request), so the
        # decision waits until the task has suspended; cancel() then interrupts the
        # await it stopped at.  If that is the schedule point of another completed
        # operation, it is owed again; the next operation's start raises it
        # (arm_owed), whichever comes first.  A task that returns before suspending
        # again keeps the request counted but is not interrupted.
        token = (task.cancelling(), msg)
        _owed[task] = token
        task._loop.call_soon(_redeliver_if_pending, task, token, context=_NO_CONTEXT)


def _redeliver_if_pending(task: Any, token: tuple[int, Any]) -> None:
    if _owed.get(task) is not token:
        return  # an operation's start has raised it already
    if task.done() or task.cancelling() < token[0]:
        del _owed[task]
        return  # finished, or the request was withdrawn
    waiter = task._fut_waiter
    if task._must_cancel or (waiter is not None and waiter.done()):
        # Another interruption (e.g. a cancel scope's) is already on its way: ours
        # would be folded into it and carry its message, and a scope would swallow
        # it.  Decide again once the task has taken that step.
        task._loop.call_soon(_redeliver_if_pending, task, token, context=_NO_CONTEXT)
        return
    del _owed[task]
    task.cancel(token[1])
    task.uncancel()


# --- the schedule point after an operation that did not wait -----------------------

@types.coroutine
def schedule_point() -> Generator[None, None, None]:
    """Yield to the loop once: what ``await sleep(0)`` does, without its two frames.

    The caller decides what a CancelledError thrown in here means: an operation that
    has already completed does not raise it (see ``is_scope_cancel``, ``redeliver``).
    """
    yield

