"""The wait queue under the primitives and streams (scopeloop._waitqueue)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from scopeloop._waitqueue import WaitQueue


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def park(queue: WaitQueue, loop: asyncio.AbstractEventLoop, *rest: Any) -> tuple[Any, ...]:
    entry = (loop.create_future(), *rest)
    queue.append(entry)
    return entry


def test_grant_goes_to_the_oldest_waiter_not_being_cancelled(loop) -> None:  # type: ignore[no-untyped-def]
    queue = WaitQueue()
    first, second, third = (park(queue, loop, n) for n in range(3))
    first[0].cancel()  # what the loop does to interrupt a blocked task
    assert queue.grant("x") is second
    assert second[0].result() == "x" and not third[0].done()
    assert queue.waiting() == 1
    queue.grant_all("y")
    assert third[0].result() == "y" and not queue
    assert queue.grant("z") is None


def test_interrupted_tells_a_grant_from_a_withdrawal(loop) -> None:  # type: ignore[no-untyped-def]
    queue = WaitQueue()
    granted, waiting = park(queue, loop), park(queue, loop)
    queue.grant(None)
    assert queue.interrupted(granted) is True  # the caller owns the grant
    assert granted[0].result() is None
    assert queue.interrupted(waiting) is False
    assert waiting[0].cancelled()  # a late grant must skip it
    assert queue.grant(None) is None


def test_withdrawing_waiters_in_any_order_keeps_the_queue_small(loop) -> None:  # type: ignore[no-untyped-def]
    queue = WaitQueue()
    entries = [park(queue, loop, n) for n in range(1000)]
    for entry in reversed(entries[1:]):  # newest first: the worst order for a deque
        assert queue.interrupted(entry) is False
        assert len(queue) <= 2 * queue.waiting() + 1
    assert queue.waiting() == 1
    assert queue.grant(None) is entries[0]


def test_grant_matching_wakes_only_matching_waiters(loop) -> None:  # type: ignore[no-untyped-def]
    queue = WaitQueue()
    a, b, c = park(queue, loop, "a"), park(queue, loop, "b"), park(queue, loop, "a")
    queue.grant_matching("closed", lambda entry: entry[1] == "a")
    assert a[0].result() == c[0].result() == "closed"
    assert list(queue) == [b] and not b[0].done()
