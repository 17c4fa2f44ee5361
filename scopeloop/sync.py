"""Synchronisation primitives (AnyIO's API): Event, Lock, Semaphore, Condition and
CapacityLimiter.

Every waiter waits on a future of its own, and a release hands the lock, token or
notification straight to the oldest waiter by setting the result of that future, so
the primitives are FIFO-fair (nobody can barge in between the release and the
waiter's wake-up).  As in the streams, the state of the waiter's future is the exact
knowledge the decisions need:

* a waiter whose future is already done is being cancelled (the loop cancels the
  future a task is blocked on to interrupt it): it is skipped and the grant goes to the
  next waiter;
* a waiter that was granted, and then cancelled before it ran again (natively, or by
  a cancel scope that reached it in that window), passes the grant on to the next
  waiter and raises CancelledError: a cancelled ``acquire()`` holds nothing and a
  cancelled ``Condition.wait()`` swallows no notification.

``Event`` is the exception: ``set()`` is a fact, not a grant.  A waiter cancelled by a
scope after the event was set still returns normally (the wait completed; the
cancellation is raised at its next checkpoint).

Checkpoints follow Trio (and AnyIO 4): ``acquire()`` (also through ``async with``)
raises CancelledError first if the task is effectively cancelled, and when it does not
have to wait it still yields to the loop once afterwards (a schedule point), unless a
Lock or Semaphore was created with ``fast_acquire=True``.  That yield is not a cancel
point (Trio's ``cancel_shielded_checkpoint``): a scope cancellation arriving then
leaves the lock or token acquired and is raised at the next checkpoint; a native
``Task.cancel()`` gives it back and raises, as in AnyIO.  ``Event.wait()`` on a set
event is a full checkpoint, as in Trio.  ``Condition.wait()`` always waits; when woken
it takes a free lock back without yielding again.  ``*_nowait()``, ``release()``,
``set()`` and ``notify()`` never yield.

State owned here: each primitive's own fields (a lock's owner, a semaphore's value, a
limiter's borrowers, an event's flag) and its WaitQueue of waiters; granting and
withdrawing waiters is ``_waitqueue.WaitQueue``'s, and the acquire protocol of Lock,
Semaphore and CapacityLimiter is written once, in ``_Acquirable.acquire``.
"""

from __future__ import annotations

import contextlib
import math
from asyncio import CancelledError, sleep
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar

from ._waitqueue import WaitQueue, is_scope_cancel, running_task, schedule_point, will_raise
from .lowlevel import TaskInfo
from .scope import CancelScope
from ._resource_errors import WouldBlock
from .task import Task

__all__ = (
    "Event", "Lock", "Semaphore", "Condition", "CapacityLimiter", "EventStatistics",
    "LockStatistics", "SemaphoreStatistics", "ConditionStatistics",
    "CapacityLimiterStatistics",
)

T = TypeVar("T")


@dataclass(frozen=True)
class EventStatistics:
    """``tasks_waiting``: tasks blocked in ``Event.wait()``."""

    tasks_waiting: int


@dataclass(frozen=True)
class LockStatistics:
    """Whether the lock is held, by which task, and how many tasks wait for it."""

    locked: bool
    owner: TaskInfo | None
    tasks_waiting: int


@dataclass(frozen=True)
class SemaphoreStatistics:
    """``tasks_waiting``: tasks blocked in ``Semaphore.acquire()``."""

    tasks_waiting: int


@dataclass(frozen=True)
class ConditionStatistics:
    """Tasks blocked in ``Condition.wait()``, and the underlying lock's statistics."""

    tasks_waiting: int
    lock_statistics: LockStatistics


@dataclass(frozen=True)
class CapacityLimiterStatistics:
    """Tokens borrowed, the total, who holds them, and how many tasks wait for one."""

    borrowed_tokens: int
    total_tokens: float
    borrowers: tuple[object, ...]
    tasks_waiting: int


class _Acquirable:
    """The acquire protocol of Lock, Semaphore and CapacityLimiter, written once.

    A subclass says how a borrower takes what it acquires without waiting
    (``_try_take``) and how it gives it back (``_give_back``, which hands it to the
    oldest waiter or frees it); its waiters are ``(future, borrower)`` entries of a
    WaitQueue.
    """

    __slots__ = ()

    _waiters: WaitQueue
    _fast_acquire: bool

    def _try_take(self, borrower: Any) -> bool:  # pragma: no cover - overridden
        raise NotImplementedError

    def _give_back(self, borrower: Any) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    async def acquire(self, *, _borrower: Any = None) -> None:
        """Acquire, waiting if necessary (``_borrower``: only for CapacityLimiter's
        ``acquire_on_behalf_of``; the running task by default)."""
        # The one copy of the protocol, run as acquire() itself: a wrapper
        # coroutine per class would cost 8-10% of an uncontended acquire.
        task = running_task()
        borrower = task if _borrower is None else _borrower
        waiters = self._waiters
        while True:
            if will_raise(task):
                await sleep(0)  # the checkpoint raises CancelledError
            if self._try_take(borrower):
                if not self._fast_acquire:
                    # The schedule point: acquired, so a scope's cancellation waits
                    # for the next checkpoint; a native one gives it back.
                    try:
                        await schedule_point()
                    except BaseException as exc:
                        if not is_scope_cancel(exc):
                            self._give_back(borrower)
                            raise
                return
            entry = (task._loop.create_future(), borrower)
            waiters.append(entry)
            try:
                await entry[0]
            except BaseException:
                if waiters.interrupted(entry):
                    self._give_back(borrower)  # granted, then interrupted: pass it on
                raise
            if not will_raise(task):
                return
            # Granted, then reached by a cancellation before it ran: pass it on; the
            # checkpoint at the top of the loop raises.
            self._give_back(borrower)


class Event:
    """A flag that tasks can wait for; once set it stays set."""

    __slots__ = ("_flag", "_waiters", "__weakref__")

    def __init__(self) -> None:
        self._flag = False
        self._waiters = WaitQueue()  # (future,) entries

    def set(self) -> None:
        """Set the flag and wake every waiting task."""
        if self._flag:
            return
        self._flag = True
        self._waiters.grant_all(None)

    def is_set(self) -> bool:
        """True once ``set()`` has been called."""
        return self._flag

    async def wait(self) -> None:
        """Wait until the flag is set (a checkpoint even if it already is)."""
        task = running_task()
        if self._flag or will_raise(task):
            await schedule_point()  # a checkpoint: a cancellation raises here
            if self._flag:
                return
        entry = (task._loop.create_future(),)
        self._waiters.append(entry)
        try:
            await entry[0]
        except BaseException:
            # Set, then interrupted: the wait happened all the same; raise anyway
            # (a cancellation must not be lost either).
            self._waiters.interrupted(entry)
            raise

    def statistics(self) -> EventStatistics:
        """How many tasks are waiting."""
        return EventStatistics(self._waiters.waiting())

    def __repr__(self) -> str:
        return f"<Event {'set' if self._flag else 'unset'} waiting={self._waiters.waiting()}>"


class Lock(_Acquirable):
    """A FIFO-fair mutual exclusion lock, owned by the task that acquired it.

    ``fast_acquire=True``: do not yield to the loop when the lock is free (acquire is
    then only a cancel point, not a schedule point).
    """

    __slots__ = ("_owner", "_waiters", "_fast_acquire", "__weakref__")

    def __init__(self, *, fast_acquire: bool = False) -> None:
        self._owner: Any = None
        self._waiters = WaitQueue()  # (future, task) entries
        self._fast_acquire = fast_acquire

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        self.release()

    def _try_take(self, borrower: Any) -> bool:
        if self._owner is None:
            self._owner = borrower
            return True
        if self._owner is borrower:
            raise RuntimeError("this task already holds the lock (Lock is not reentrant)")
        return False

    def _give_back(self, borrower: Any) -> None:
        self._hand_over()

    def acquire_nowait(self) -> None:
        """Acquire the lock if it is free; raise WouldBlock otherwise."""
        if not self._try_take(running_task()):
            raise WouldBlock

    def release(self) -> None:
        """Release the lock; the oldest waiter (if any) gets it."""
        if self._owner is not running_task():
            raise RuntimeError("the current task is not holding this lock")
        self._hand_over()

    def _hand_over(self) -> None:
        entry = self._waiters.grant(None)
        self._owner = None if entry is None else entry[1]

    def locked(self) -> bool:
        """True if some task holds the lock."""
        return self._owner is not None

    def statistics(self) -> LockStatistics:
        """Whether the lock is held, by which task, and how many tasks wait."""
        owner = TaskInfo(self._owner) if self._owner is not None else None
        return LockStatistics(self._owner is not None, owner, self._waiters.waiting())

    def __repr__(self) -> str:
        owner = "unlocked" if self._owner is None else f"locked by {self._owner.get_name()!r}"
        return f"<Lock {owner} waiting={self._waiters.waiting()}>"


class Semaphore(_Acquirable):
    """A FIFO-fair counting semaphore.

    ``max_value``: releasing beyond it raises ValueError.  ``fast_acquire=True``: do
    not yield to the loop when a token is free.
    """

    __slots__ = ("_value", "_max_value", "_waiters", "_fast_acquire", "__weakref__")

    def __init__(self, initial_value: int, *, max_value: int | None = None,
                 fast_acquire: bool = False) -> None:
        if isinstance(initial_value, bool) or not isinstance(initial_value, int):
            raise TypeError(f"initial_value must be an int, not {type(initial_value).__name__}")
        if initial_value < 0:
            raise ValueError(f"initial_value must not be negative, got {initial_value}")
        if max_value is not None:
            if isinstance(max_value, bool) or not isinstance(max_value, int):
                raise TypeError(f"max_value must be an int or None, "
                                f"not {type(max_value).__name__}")
            if max_value < initial_value:
                raise ValueError(f"max_value ({max_value}) must not be less than "
                                 f"initial_value ({initial_value})")
        self._value = initial_value
        self._max_value = max_value
        self._waiters = WaitQueue()  # (future, task) entries
        self._fast_acquire = fast_acquire

    async def __aenter__(self) -> Semaphore:
        await self.acquire()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        self.release()

    def _try_take(self, borrower: Any) -> bool:
        if self._value == 0:
            return False
        self._value -= 1
        return True

    def _give_back(self, borrower: Any) -> None:
        self._hand_over()

    def acquire_nowait(self) -> None:
        """Take a token if one is free; raise WouldBlock otherwise."""
        if not self._try_take(None):
            raise WouldBlock

    def release(self) -> None:
        """Return a token; the oldest waiter (if any) gets it."""
        if self._max_value is not None and self._value >= self._max_value:
            raise ValueError(f"semaphore released too many times (max_value "
                             f"{self._max_value})")
        self._hand_over()

    def _hand_over(self) -> None:
        if self._waiters.grant(None) is None:
            self._value += 1

    @property
    def value(self) -> int:
        """Tokens currently free."""
        return self._value

    @property
    def max_value(self) -> int | None:
        """The most tokens there may be (None: no limit)."""
        return self._max_value

    def statistics(self) -> SemaphoreStatistics:
        """How many tasks wait for a token."""
        return SemaphoreStatistics(self._waiters.waiting())

    def __repr__(self) -> str:
        return f"<Semaphore value={self._value} waiting={self._waiters.waiting()}>"


_NO_SHIELD = contextlib.nullcontext()  # Condition._reacquire() in a plain asyncio Task


class Condition:
    """Wait for a notification while holding a lock (a ``Lock`` of its own by default)."""

    __slots__ = ("_lock", "_waiters", "__weakref__")

    def __init__(self, lock: Lock | None = None) -> None:
        self._lock = Lock() if lock is None else lock
        self._waiters = WaitQueue()  # (future,) entries

    async def __aenter__(self) -> None:
        await self._lock.acquire()

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        self._lock.release()

    async def acquire(self) -> None:
        """Acquire the underlying lock."""
        await self._lock.acquire()

    def acquire_nowait(self) -> None:
        """Acquire the underlying lock if it is free; raise WouldBlock otherwise."""
        self._lock.acquire_nowait()

    def release(self) -> None:
        """Release the underlying lock."""
        self._lock.release()

    def locked(self) -> bool:
        """True if the underlying lock is held."""
        return self._lock.locked()

    def _check_held(self, task: Any, what: str) -> None:
        if self._lock._owner is not task:
            raise RuntimeError(f"{what} needs the condition's lock: call it inside "
                               f"'async with condition:'")

    def notify(self, n: int = 1) -> None:
        """Wake up to ``n`` waiting tasks, oldest first."""
        self._check_held(running_task(), "Condition.notify()")
        waiters = self._waiters
        while n > 0 and waiters.grant(None) is not None:
            n -= 1

    def notify_all(self) -> None:
        """Wake every waiting task."""
        self._check_held(running_task(), "Condition.notify_all()")
        self._waiters.grant_all(None)

    async def wait(self) -> None:
        """Release the lock, wait for a notification, and re-acquire the lock.

        The lock is held again when this returns or raises, even if cancelled.
        """
        task = running_task()
        if will_raise(task):
            await sleep(0)  # the checkpoint raises CancelledError
        self._check_held(task, "Condition.wait()")
        waiters = self._waiters
        entry = (task._loop.create_future(),)
        waiters.append(entry)
        self._lock.release()
        try:
            await entry[0]
        except BaseException:
            if waiters.interrupted(entry):
                waiters.grant(None)  # notified, then interrupted: pass it on
            await self._reacquire(task)
            raise
        cancelled = will_raise(task)
        if cancelled:
            waiters.grant(None)  # notified, then cancelled before it ran: pass it on
        await self._reacquire(task)
        if cancelled:
            await sleep(0)  # the checkpoint raises CancelledError

    async def _reacquire(self, task: Any) -> None:
        lock = self._lock
        if lock._owner is None:
            # Free (so nobody waits for it): take it without another yield, as a
            # Trio Condition hands its waiter the lock; the wake-up was the
            # schedule point.
            lock._owner = task
            return
        # Scope cancellation waits behind a shield; a native cancellation is kept and
        # raised once the lock is held again (as asyncio.Condition does).
        error: CancelledError | None = None
        while True:
            try:
                with CancelScope(shield=True) if isinstance(task, Task) else _NO_SHIELD:
                    await self._lock.acquire()
                break
            except CancelledError as exc:
                error = exc
        if error is not None:
            try:
                raise error
            finally:
                error = None  # the frame would otherwise hold its own traceback (a cycle)

    async def wait_for(self, predicate: Callable[[], T]) -> T:
        """Wait until ``predicate()`` is true (checked with the lock held); return it."""
        while not (result := predicate()):
            await self.wait()
        return result

    def statistics(self) -> ConditionStatistics:
        """How many tasks wait for a notification, and the lock's statistics."""
        return ConditionStatistics(self._waiters.waiting(), self._lock.statistics())


def _check_tokens(value: Any) -> float:
    if isinstance(value, bool) or not (isinstance(value, int) or value == math.inf):
        raise TypeError(f"total_tokens must be an int or math.inf, not {value!r}")
    if value < 0:
        raise ValueError(f"total_tokens must not be negative, got {value}")
    return value  # type: ignore[no-any-return]


class CapacityLimiter(_Acquirable):
    """Limits how many tasks (or other borrowers) use a resource at once.

    Each borrower holds at most one token.  Waiters get tokens in FIFO order; raising
    ``total_tokens`` hands the new tokens to waiters at once.
    """

    __slots__ = ("_total", "_borrowers", "_waiters", "__weakref__")

    _fast_acquire = False  # acquiring a free token is a schedule point

    def __init__(self, total_tokens: float) -> None:
        self._total = _check_tokens(total_tokens)
        self._borrowers: set[object] = set()
        self._waiters = WaitQueue()  # (future, borrower) entries

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        self.release()

    @property
    def total_tokens(self) -> float:
        """The number of tokens; assignable (waiters get new tokens at once)."""
        return self._total

    @total_tokens.setter
    def total_tokens(self, value: float) -> None:
        self._total = _check_tokens(value)
        self._hand_over()

    @property
    def borrowed_tokens(self) -> int:
        """Tokens currently held."""
        return len(self._borrowers)

    @property
    def available_tokens(self) -> float:
        """Tokens currently free (negative if ``total_tokens`` was lowered below use)."""
        return self._total - len(self._borrowers)

    def _check_new(self, borrower: object) -> None:
        if borrower in self._borrowers:
            raise RuntimeError(f"{borrower!r} already holds one of this "
                               f"CapacityLimiter's tokens")
        # A scan: only reached when a borrower waits or takes a token.
        if any(entry[1] is borrower and not entry[0].done() for entry in self._waiters):
            raise RuntimeError(f"{borrower!r} is already waiting for one of this "
                               f"CapacityLimiter's tokens")

    def acquire_nowait(self) -> None:
        """Take a token for the current task; raise WouldBlock if none is free."""
        self.acquire_on_behalf_of_nowait(running_task())

    def acquire_on_behalf_of_nowait(self, borrower: object) -> None:
        """Take a token for ``borrower``; raise WouldBlock if none is free."""
        if not self._try_take(borrower):
            raise WouldBlock

    async def acquire_on_behalf_of(self, borrower: object) -> None:
        """Take a token for ``borrower``, waiting for one if necessary."""
        if borrower is None:
            raise TypeError("borrower must not be None (it stands for the current task)")
        await self.acquire(_borrower=borrower)

    def _try_take(self, borrower: Any) -> bool:
        self._check_new(borrower)
        if len(self._borrowers) >= self._total:
            return False
        self._borrowers.add(borrower)
        return True

    def _give_back(self, borrower: Any) -> None:
        self._borrowers.discard(borrower)
        self._hand_over()

    def release(self) -> None:
        """Return the current task's token."""
        self.release_on_behalf_of(running_task())

    def release_on_behalf_of(self, borrower: object) -> None:
        """Return ``borrower``'s token; the oldest waiter (if any) gets it."""
        try:
            self._borrowers.remove(borrower)
        except KeyError:
            raise RuntimeError(f"{borrower!r} is not holding any of this "
                               f"CapacityLimiter's tokens") from None
        self._hand_over()

    def _hand_over(self) -> None:
        borrowers = self._borrowers
        while len(borrowers) < self._total:
            entry = self._waiters.grant(None)
            if entry is None:
                return
            borrowers.add(entry[1])

    def statistics(self) -> CapacityLimiterStatistics:
        """Tokens borrowed, the total, the borrowers, and how many tasks wait."""
        return CapacityLimiterStatistics(len(self._borrowers), self._total,
                                         tuple(self._borrowers), self._waiters.waiting())

    def __repr__(self) -> str:
        return (f"<CapacityLimiter {len(self._borrowers)}/{self._total} borrowed "
                f"waiting={self._waiters.waiting()}>")
