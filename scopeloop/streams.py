"""Memory object streams (AnyIO's API) whose hand-offs cancellation cannot break.

Every blocked ``send()`` or ``receive()`` waits on a future of its own.  An item is
handed to a waiting receiver by setting the result of that receiver's future, and a
waiting sender's item is taken by setting the result of the sender's future.  The
state of those futures is the exact knowledge every decision needs, so no item is
lost or delivered twice:

* A waiter whose future is already done is being cancelled (the loop cancels the
  future a task is blocked on to interrupt it).  It is skipped: the item goes to the
  next waiter or into the buffer, or stays with its sender.  A receiver blocked inside
  a shield within a cancelled region has a pending future, so it gets the item: a
  shield means it is *not* about to be cancelled.
* A waiter whose future got a result has completed its operation, even if a
  cancellation reaches it before it runs again: the operation returns normally and
  the cancellation is raised at the task's next suspension.  Scopeloop's scope
  delivery does this by itself.  A native ``Task.cancel()`` in that window is
  re-delivered here; its sender can still withdraw it with ``uncancel()`` before the
  task next suspends (as ``asyncio.timeout`` does when its block ends).

So a ``send()`` that raised did not deliver, a ``receive()`` that raised did not
consume, and every receiver gets each sender's items in the order they were sent.

``send()``, ``receive()`` and ``async for`` follow Trio's memory channels.  They are
cancel points: they raise CancelledError, without delivering or consuming, if the task
is effectively cancelled when they are called.  And they are schedule points: one that
completes without waiting (room in the buffer, an item ready, a waiting peer) yields to
the loop once afterwards, so a task looping on ``send()`` into an unbounded stream
still lets the others run.  That yield is not a cancel point (Trio's
``cancel_shielded_checkpoint``): the operation has already happened, so a cancellation
that arrives meanwhile is raised at the task's next checkpoint instead (a scope's is
level-triggered anyway; a native ``Task.cancel()`` is re-delivered, as for a waiter
whose operation completed).  The ``*_nowait()`` forms never yield.

State owned here: one ``_StreamState`` per stream (the buffer, the open handle
counts, and the WaitQueues of blocked receivers and senders), shared by its handles,
and each handle's ``_closed`` flag.  The queues' operations, the cancel-point test and
the re-delivery of native cancellations are ``_waitqueue``'s; ``send()``,
``receive()`` and ``_take()`` keep inlined copies of some of them (marked).
"""

from __future__ import annotations

import math
import operator
import warnings
from asyncio import CancelledError, sleep
from collections import deque
from types import TracebackType
from typing import Any, NamedTuple, TypeVar

from ._resource_errors import BrokenResourceError, ClosedResourceError, EndOfStream, WouldBlock
from ._waitqueue import (
    WaitQueue,
    _owed,
    arm_owed,
    no_scope_or_raise,
    redeliver,
    running_task,
    schedule_point,
)
from .abc import ObjectReceiveStream, ObjectSendStream

__all__ = (
    "create_memory_object_stream", "MemoryObjectSendStream", "MemoryObjectReceiveStream",
    "MemoryObjectStreamStatistics", "EndOfStream", "ClosedResourceError",
    "BrokenResourceError", "WouldBlock",
)

T_Item = TypeVar("T_Item")
T_co = TypeVar("T_co", covariant=True)
T_contra = TypeVar("T_contra", contravariant=True)


class MemoryObjectStreamStatistics(NamedTuple):
    """A snapshot of a memory object stream."""

    current_buffer_used: int  #: items in the buffer
    max_buffer_size: float  #: buffer capacity (``math.inf``: unbounded)
    open_send_streams: int  #: send handles not yet closed
    open_receive_streams: int  #: receive handles not yet closed
    tasks_waiting_send: int  #: tasks blocked in ``send()``
    tasks_waiting_receive: int  #: tasks blocked in ``receive()``


class _Signal:
    """What a waiter's future gets instead of an item (receivers) or True (senders)."""

    __slots__ = ("_error", "_args")

    def __init__(self, error: type[Exception], *args: str) -> None:
        self._error = error
        self._args = args

    def error(self) -> Exception:
        """The exception the woken ``send()`` or ``receive()`` raises."""
        return self._error(*self._args)


_END = _Signal(EndOfStream)  # receiver: the last send handle was closed
_RECEIVE_CLOSED = _Signal(ClosedResourceError, "this receive stream was closed while waiting")
_SEND_CLOSED = _Signal(ClosedResourceError, "this send stream was closed while waiting "
                                            "to send; the item was not delivered")
_BROKEN = _Signal(BrokenResourceError, "every receive stream was closed while waiting "
                                       "to send; the item was not delivered")
_EMPTY = object()  # _take(): nothing to receive yet; _interrupted(): re-raise


class _StreamState:
    """What the send and receive handles of one stream share."""

    __slots__ = ("max_buffer_size", "buffer", "open_send", "open_receive",
                 "receivers", "senders")

    def __init__(self, max_buffer_size: float) -> None:
        self.max_buffer_size = max_buffer_size
        self.buffer: deque[Any] = deque()
        self.open_send = 0
        self.open_receive = 0
        # (future, handle): receivers blocked on an empty buffer.
        self.receivers = WaitQueue()
        # (future, item, handle): senders blocked on a full buffer.
        self.senders = WaitQueue()

    def refill(self) -> None:
        """Move the oldest live waiting sender's item into the buffer, if it has room."""
        if len(self.buffer) < self.max_buffer_size:
            entry = self.senders.grant(True)
            if entry is not None:
                self.buffer.append(entry[1])

    def put_back(self, item: Any) -> None:
        """Return an item handed to a receive that then failed with an error.

        It goes to the next waiting receiver or the head of the buffer; a receiver
        that has meanwhile taken a newer item directly from a waiting sender sees it
        out of order (only a receive torn down by an exception gets here).
        """
        if self.receivers.grant(item) is None:
            self.buffer.appendleft(item)

    def statistics(self) -> MemoryObjectStreamStatistics:
        return MemoryObjectStreamStatistics(
            len(self.buffer), self.max_buffer_size, self.open_send, self.open_receive,
            self.senders.waiting(), self.receivers.waiting())


class _Handle:
    """What both ends share: closing, cloning, context managers, the unclosed warning."""

    __slots__ = ("_state", "_closed", "__weakref__")

    _state: _StreamState
    _closed: bool

    def close(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    async def aclose(self) -> None:
        """Close this handle, then checkpoint (as Trio's channels do).

        The handle is closed even if the checkpoint raises CancelledError.
        """
        self.close()
        await sleep(0)

    def statistics(self) -> MemoryObjectStreamStatistics:
        """A snapshot of the stream: buffer use, open handles, waiting tasks."""
        return self._state.statistics()

    def __enter__(self: Any) -> Any:
        return self

    def __exit__(self, exc_type: type[BaseException] | None,
                 exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    async def __aenter__(self: Any) -> Any:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            warnings.warn(f"unclosed {self!r}: close it (or use it as a context manager) "
                          f"so the other side sees the end of the stream",
                          ResourceWarning, stacklevel=1, source=self)

    def __repr__(self) -> str:
        state = self._state
        used = len(state.buffer)
        return (f"<{type(self).__name__} {'closed' if self._closed else 'open'} "
                f"buffer={used}/{state.max_buffer_size}>")


class MemoryObjectSendStream(_Handle, ObjectSendStream[T_contra]):
    """The sending end of a memory object stream (see ``create_memory_object_stream``)."""

    __slots__ = ()

    def __init__(self, state: _StreamState) -> None:
        self._closed = True  # until registered, so __del__ stays quiet on failure
        self._state = state
        state.open_send += 1
        self._closed = False

    def _offer(self, item: Any) -> bool:
        """Deliver ``item`` without waiting if possible; False if the send must wait."""
        if self._closed:
            raise ClosedResourceError("this send stream has been closed")
        state = self._state
        if not state.open_receive:
            raise BrokenResourceError("every receive stream has been closed")
        if state.receivers.grant(item) is not None:
            return True
        buffer = state.buffer
        if len(buffer) < state.max_buffer_size:
            buffer.append(item)
            return True
        return False

    def send_nowait(self, item: T_contra) -> None:
        """Send ``item`` if a receiver is waiting or the buffer has room.

        Raises ClosedResourceError if this handle is closed, BrokenResourceError if
        every receive handle is closed, WouldBlock otherwise.
        """
        if not self._offer(item):
            raise WouldBlock

    async def send(self, item: T_contra) -> None:
        """Send ``item``, waiting until a receiver takes it or the buffer has room.

        Raises ClosedResourceError if this handle is (or gets) closed and
        BrokenResourceError if every receive handle is (or gets) closed; in both cases
        the item was not delivered.  If this raises CancelledError, the item was not
        delivered either.
        """
        # The hot path, written out: the cancel point (a marked copy of
        # _waitqueue.will_raise), then _offer() (a marked copy), then the schedule
        # point.  Keep the copies in sync; tests/test_property_streams.py drives both.
        # Measured (callgrind, 3.11): calling will_raise costs 5% of a ping-pong
        # round trip on uvloop, 3% on the stdlib loop.
        task = running_task()
        # -- copy of will_raise(task) --
        try:
            scope = task._scope
        except AttributeError:
            scope = no_scope_or_raise(task)
        while scope is not None:
            if scope._cancel_called:
                await sleep(0)  # the checkpoint raises CancelledError
                break
            if scope._shield:
                break
            scope = scope._parent
        if task._must_cancel or (_owed and arm_owed(task)):
            await sleep(0)
        # -- end of copy --
        if self._closed:
            raise ClosedResourceError("this send stream has been closed")
        state = self._state
        if not state.open_receive:
            raise BrokenResourceError("every receive stream has been closed")
        receivers = state.receivers
        while receivers:  # an inlined copy of WaitQueue.grant(item)
            fut = receivers.popleft()[0]
            if not fut.done():  # done: its task is being cancelled, skip it
                fut.set_result(item)
                break
        else:
            if len(state.buffer) < state.max_buffer_size:
                state.buffer.append(item)
            else:
                # Wait (the wait is the schedule point) until a receiver takes it.
                fut = task._loop.create_future()
                entry = (fut, item, self)
                state.senders.append(entry)
                try:
                    result = await fut
                except BaseException as exc:
                    # If not granted, a receiver cannot take the item any more.
                    if state.senders.interrupted(entry) and fut.result() is True:
                        # A receiver took the item before the interruption arrived.
                        if isinstance(exc, CancelledError):
                            redeliver(task, exc)
                            return
                    raise
                if result is not True:
                    raise result.error()
                return
        # Delivered without waiting: the schedule point.  The send has happened, so a
        # cancellation arriving now is left to the next checkpoint.
        try:
            await schedule_point()
        except CancelledError as exc:
            redeliver(task, exc)

    def clone(self) -> MemoryObjectSendStream[T_contra]:
        """Another send handle for the same stream, to be closed separately.

        Receivers see the end of the stream once every send handle is closed.
        """
        if self._closed:
            raise ClosedResourceError("cannot clone a closed send stream")
        return MemoryObjectSendStream(self._state)

    def close(self) -> None:
        """Close this handle.

        A ``send()`` waiting on this handle raises ClosedResourceError (its item is not
        delivered).  When the last send handle closes, waiting receivers get
        EndOfStream, and later receives do once the buffer is empty.
        """
        if self._closed:
            return
        self._closed = True
        state = self._state
        state.open_send -= 1
        if state.senders:
            state.senders.grant_matching(_SEND_CLOSED, lambda entry: entry[2] is self)
        if not state.open_send:
            state.receivers.grant_all(_END)


class MemoryObjectReceiveStream(_Handle, ObjectReceiveStream[T_co]):
    """The receiving end of a memory object stream (see ``create_memory_object_stream``).

    ``async for item in stream`` receives until the end of the stream.
    """

    __slots__ = ()

    def __init__(self, state: _StreamState) -> None:
        self._closed = True  # until registered, so __del__ stays quiet on failure
        self._state = state
        state.open_receive += 1
        self._closed = False

    def _take(self) -> Any:
        """Take the next item without waiting if possible; ``_EMPTY`` if it must wait."""
        if self._closed:
            raise ClosedResourceError("this receive stream has been closed")
        state = self._state
        buffer = state.buffer
        if buffer:
            item = buffer.popleft()
            if state.senders:
                state.refill()
            return item
        senders = state.senders
        while senders:  # an inlined copy of WaitQueue.grant(True) (a ping-pong hot path)
            fut, item, _ = senders.popleft()
            if not fut.done():  # done: its task is being cancelled, skip it
                fut.set_result(True)
                return item
        if not state.open_send:
            raise EndOfStream
        return _EMPTY

    def receive_nowait(self) -> T_co:
        """Receive an item if one is buffered or a sender is waiting.

        Raises ClosedResourceError if this handle is closed, EndOfStream if the buffer
        is empty and every send handle is closed, WouldBlock otherwise.
        """
        item = self._take()
        if item is _EMPTY:
            raise WouldBlock
        return item  # type: ignore[no-any-return]

    async def receive(self) -> T_co:
        """Receive the next item, waiting for one if necessary.

        Raises EndOfStream once the buffer is empty and every send handle is closed,
        and ClosedResourceError if this handle is (or gets) closed.  If this raises
        CancelledError, no item was consumed.
        """
        # The receive logic for receive() and async for; receive_nowait() shares
        # _take().  The cancel point (a marked copy of _waitqueue.will_raise, as in
        # send()), then _take(), then the schedule point or the wait in this frame
        # (resuming through an extra frame would cost a tenth of a ping-pong round
        # trip).
        task = running_task()
        # -- copy of will_raise(task) --
        try:
            scope = task._scope
        except AttributeError:
            scope = no_scope_or_raise(task)
        while scope is not None:
            if scope._cancel_called:
                await sleep(0)  # the checkpoint raises CancelledError
                break
            if scope._shield:
                break
            scope = scope._parent
        if task._must_cancel or (_owed and arm_owed(task)):
            await sleep(0)
        # -- end of copy --
        item = self._take()
        if item is _EMPTY:
            # Wait (the wait is the schedule point) for a sender's item.
            fut = task._loop.create_future()
            entry = (fut, self)
            self._state.receivers.append(entry)
            try:
                item = await fut
            except BaseException as exc:
                item = self._interrupted(task, entry, exc)
                if item is _EMPTY:
                    raise
                return item  # type: ignore[no-any-return]
            if item.__class__ is _Signal:
                raise item.error()
            return item  # type: ignore[no-any-return]
        # Taken without waiting: the schedule point (see _yielded()).
        try:
            await schedule_point()
        except BaseException as exc:
            self._yielded(task, item, exc)
        return item  # type: ignore[no-any-return]

    def _yielded(self, task: Any, item: Any, exc: BaseException) -> None:
        """The schedule point after taking ``item`` without waiting was interrupted.

        The item has been consumed, so a cancellation is left to the task's next
        checkpoint and the receive returns it; anything else (the coroutine is being
        closed) puts it back and propagates.
        """
        if isinstance(exc, CancelledError):
            redeliver(task, exc)
            return
        self._state.put_back(item)
        raise exc

    def _interrupted(self, task: Any, entry: tuple[Any, ...], exc: BaseException) -> Any:
        """A waiting receive was interrupted: the item to return, or _EMPTY to re-raise."""
        if self._state.receivers.interrupted(entry):
            item = entry[0].result()
            if item.__class__ is not _Signal:
                # A sender handed the item over before the interruption arrived.
                if isinstance(exc, CancelledError):
                    redeliver(task, exc)
                    return item
                self._state.put_back(item)  # e.g. the coroutine is being closed
        return _EMPTY

    def clone(self) -> MemoryObjectReceiveStream[T_co]:
        """Another receive handle for the same stream, to be closed separately.

        Senders see the stream as broken once every receive handle is closed.
        """
        if self._closed:
            raise ClosedResourceError("cannot clone a closed receive stream")
        return MemoryObjectReceiveStream(self._state)

    def close(self) -> None:
        """Close this handle.

        A ``receive()`` waiting on this handle raises ClosedResourceError.  When the
        last receive handle closes, the buffered items are dropped and senders get
        BrokenResourceError (a waiting sender's item is not delivered).
        """
        if self._closed:
            return
        self._closed = True
        state = self._state
        state.open_receive -= 1
        if state.receivers:
            state.receivers.grant_matching(_RECEIVE_CLOSED, lambda entry: entry[1] is self)
        if not state.open_receive:
            state.buffer.clear()  # nobody can receive them; do not keep them alive
            state.senders.grant_all(_BROKEN)


def _check_buffer_size(value: Any) -> float:
    if isinstance(value, float):
        if value == math.inf:
            return value
        raise ValueError(f"max_buffer_size must be a non-negative int or math.inf, not "
                         f"{value!r}; use an int for a bounded buffer")
    if isinstance(value, bool):
        raise TypeError("max_buffer_size must be a non-negative int or math.inf, not a bool")
    try:
        size = operator.index(value)
    except TypeError:
        raise TypeError(f"max_buffer_size must be a non-negative int or math.inf, "
                        f"not {type(value).__name__}") from None
    if size < 0:
        raise ValueError(f"max_buffer_size must not be negative, got {size}")
    return size


class create_memory_object_stream(  # noqa: N801 - a class so it can be subscripted
        tuple[MemoryObjectSendStream[T_Item], MemoryObjectReceiveStream[T_Item]]):
    """Create a memory object stream: returns ``(send_stream, receive_stream)``.

    ``max_buffer_size`` is how many items the stream holds before ``send()`` waits:
    0 (the default) makes every send wait for a receiver, ``math.inf`` never waits.
    Annotate the item type with ``create_memory_object_stream[int](5)``;
    ``item_type`` is accepted for compatibility and does nothing.
    """

    def __new__(cls, max_buffer_size: float = 0,  # type: ignore[misc]
                item_type: object = None
                ) -> tuple[MemoryObjectSendStream[T_Item], MemoryObjectReceiveStream[T_Item]]:
        state = _StreamState(_check_buffer_size(max_buffer_size))
        return MemoryObjectSendStream(state), MemoryObjectReceiveStream(state)
