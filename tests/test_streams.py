"""Memory object streams: AnyIO's API and semantics, and hand-offs that cancellation
cannot break (no item lost, none delivered twice, FIFO on both sides)."""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import math
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import scopeloop
from scopeloop import (
    BrokenResourceError,
    CancelScope,
    ClosedResourceError,
    EndOfStream,
    MemoryObjectReceiveStream,
    MemoryObjectSendStream,
    MemoryObjectStreamStatistics,
    WouldBlock,
    create_memory_object_stream,
    wait_all_tasks_blocked,
)

SCENARIOS = Path(__file__).resolve().parent / "scenarios"


def load(name: str) -> ModuleType:
    """Import a shared scenario module (as tests/test_scenarios.py does)."""
    spec = importlib.util.spec_from_file_location(f"scenario_{name}", SCENARIOS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def spawn(coro):  # type: ignore[no-untyped-def]
    return asyncio.get_running_loop().create_task(coro)


# -- creating ------------------------------------------------------------------------


def test_create_returns_both_ends_and_is_subscriptable() -> None:
    send, receive = create_memory_object_stream[int](5)
    assert isinstance(send, MemoryObjectSendStream)
    assert isinstance(receive, MemoryObjectReceiveStream)
    assert send.statistics() == MemoryObjectStreamStatistics(0, 5, 1, 1, 0, 0)
    send.close()
    receive.close()
    send, receive = create_memory_object_stream(math.inf, item_type=str)
    assert receive.statistics().max_buffer_size == math.inf
    send.close()
    receive.close()


@pytest.mark.parametrize(("size", "error", "words"), [
    (-1, ValueError, "negative"),
    (2.5, ValueError, "math.inf"),
    (-math.inf, ValueError, "math.inf"),
    (math.nan, ValueError, "math.inf"),
    ("3", TypeError, "str"),
    (None, TypeError, "NoneType"),
    (True, TypeError, "bool"),
])
def test_bad_buffer_size_is_a_clear_error(size: object, error: type[Exception], words: str) -> None:
    with pytest.raises(error, match="max_buffer_size") as info:
        create_memory_object_stream(size)  # type: ignore[arg-type]
    assert words in str(info.value)


# -- basic operation -----------------------------------------------------------------


def test_buffered_send_and_receive_in_order(run) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        send, receive = create_memory_object_stream[int](3)
        for i in range(3):
            await send.send(i)
        with pytest.raises(WouldBlock):
            send.send_nowait(3)
        assert send.statistics().current_buffer_used == 3
        assert [await receive.receive() for _ in range(2)] == [0, 1]
        assert receive.receive_nowait() == 2
        with pytest.raises(WouldBlock):
            receive.receive_nowait()
        send.close()
        with pytest.raises(EndOfStream):
            await receive.receive()
        receive.close()
    run(main)


def test_rendezvous_waits_for_the_other_side(run) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        send, receive = create_memory_object_stream[str]()
        with pytest.raises(WouldBlock):
            send.send_nowait("x")
        sender = spawn(send.send("a"))
        await wait_all_tasks_blocked()
        assert not sender.done()
        assert send.statistics().tasks_waiting_send == 1
        assert receive.receive_nowait() == "a"
        await sender
        receiver = spawn(receive.receive())
        await wait_all_tasks_blocked()
        assert receive.statistics().tasks_waiting_receive == 1
        send.send_nowait("b")
        assert await receiver == "b"
        send.close()
        receive.close()
    run(main)


def test_async_for_ends_when_the_last_sender_closes(run) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        send, receive = create_memory_object_stream[int](1)
        clone = send.clone()

        async def produce(stream: MemoryObjectSendStream[int], items: range) -> None:
            async with stream:
                for i in items:
                    await stream.send(i)

        producers = [spawn(produce(send, range(0, 5))), spawn(produce(clone, range(5, 10)))]
        got = []
        async with receive:
            async for item in receive:
                got.append(item)
        await asyncio.gather(*producers)
        assert sorted(got) == list(range(10))
        assert [i for i in got if i < 5] == list(range(5))
    run(main)


def test_buffered_items_are_received_before_end_of_stream(run) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        send, receive = create_memory_object_stream[int](math.inf)
        with send:
            for i in range(3):
                send.send_nowait(i)
        assert [i async for i in receive] == [0, 1, 2]
        with pytest.raises(EndOfStream):
            receive.receive_nowait()
        receive.close()
    run(main)


def test_closed_handles_and_broken_streams(run) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        send, receive = create_memory_object_stream[int](1)
        send.close()
        send.close()  # idempotent
        with pytest.raises(ClosedResourceError):
            send.send_nowait(1)
        with pytest.raises(ClosedResourceError):
            await send.send(1)
        with pytest.raises(ClosedResourceError):
            send.clone()
        await receive.aclose()
        with pytest.raises(ClosedResourceError):
            receive.receive_nowait()
        with pytest.raises(ClosedResourceError):
            await receive.receive()
        with pytest.raises(ClosedResourceError):
            receive.clone()

        send, receive = create_memory_object_stream[int](1)
        receive_clone = receive.clone()
        receive.close()
        send.send_nowait(1)  # one receive handle is still open
        receive_clone.close()
        assert send.statistics().current_buffer_used == 0  # dropped: nobody can receive it
        with pytest.raises(BrokenResourceError):
            send.send_nowait(2)
        with pytest.raises(BrokenResourceError):
            await send.send(2)
        send.close()
    run(main)


def test_closing_wakes_the_waiters(run) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        # The last send handle closing ends waiting receives.
        send, receive = create_memory_object_stream[int]()
        receivers = [spawn(receive.receive()) for _ in range(2)]
        await wait_all_tasks_blocked()
        await send.aclose()
        for task in receivers:
            with pytest.raises(EndOfStream):
                await task
        receive.close()

        # The last receive handle closing breaks waiting sends; the items are not delivered.
        send, receive = create_memory_object_stream[int]()
        senders = [spawn(send.send(i)) for i in range(2)]
        await wait_all_tasks_blocked()
        receive.close()
        for task in senders:
            with pytest.raises(BrokenResourceError, match="not delivered"):
                await task
        send.close()
    run(main)


def test_closing_a_handle_wakes_only_its_own_waiters(run) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        send, receive = create_memory_object_stream[int]()
        other_receive = receive.clone()
        mine = spawn(receive.receive())
        theirs = spawn(other_receive.receive())
        await wait_all_tasks_blocked()
        receive.close()
        with pytest.raises(ClosedResourceError, match="closed while waiting"):
            await mine
        assert not theirs.done()
        send.send_nowait(7)
        assert await theirs == 7

        other_send = send.clone()
        blocked = spawn(send.send(1))
        waiting = spawn(other_send.send(2))
        await wait_all_tasks_blocked()
        send.close()
        with pytest.raises(ClosedResourceError, match="not delivered"):
            await blocked
        assert other_receive.receive_nowait() == 2  # the other sender's item, not ours
        await waiting
        with pytest.raises(WouldBlock):
            other_receive.receive_nowait()
        other_send.close()
        other_receive.close()
    run(main)


def test_statistics_count_handles_and_waiting_tasks(run) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        send, receive = create_memory_object_stream[int](1)
        clones = [send.clone(), receive.clone(), receive.clone()]
        assert receive.statistics() == MemoryObjectStreamStatistics(0, 1, 2, 3, 0, 0)
        send.send_nowait(1)
        senders = [spawn(send.send(i)) for i in range(2)]
        await wait_all_tasks_blocked()
        assert send.statistics() == MemoryObjectStreamStatistics(1, 1, 2, 3, 2, 0)
        senders[0].cancel()
        await wait_all_tasks_blocked()
        assert send.statistics().tasks_waiting_send == 1
        assert [receive.receive_nowait() for _ in range(2)] == [1, 1]
        await senders[1]
        for stream in [send, receive, *clones]:
            stream.close()
        assert send.statistics() == MemoryObjectStreamStatistics(0, 1, 0, 0, 0, 0)
    run(main)


def test_context_managers_close(run) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        send, receive = create_memory_object_stream[int]()
        with send as entered_send, receive.clone() as clone:
            assert entered_send is send
            assert clone.statistics().open_receive_streams == 2
        assert send.statistics().open_send_streams == 0
        assert send.statistics().open_receive_streams == 1
        async with receive as entered_receive:
            assert entered_receive is receive
        assert send.statistics().open_receive_streams == 0
    run(main)


def test_unclosed_stream_warns_when_collected() -> None:
    send, receive = create_memory_object_stream[int]()
    send.close()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del send
        del receive
        gc.collect()
    messages = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert len(messages) == 1
    assert "unclosed <MemoryObjectReceiveStream" in messages[0]


def test_works_on_a_plain_asyncio_task() -> None:
    """Streams need no scope machinery: they run on stock asyncio tasks too."""
    async def main() -> list[int]:
        send, receive = create_memory_object_stream[int]()

        async def produce() -> None:
            async with send:
                for i in range(3):
                    await send.send(i)

        task = asyncio.get_running_loop().create_task(produce())
        async with receive:
            got = [i async for i in receive]
        await task
        return got
    assert asyncio.run(main()) == [0, 1, 2]


# -- FIFO ----------------------------------------------------------------------------


def test_fifo_among_waiting_receivers_and_senders(run) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        send, receive = create_memory_object_stream[int]()
        got: list[tuple[int, int]] = []

        async def receiver(n: int) -> None:
            got.append((n, await receive.receive()))

        for n in range(3):
            spawn(receiver(n))
            await wait_all_tasks_blocked()  # they queue up in this order
        for item in (10, 11, 12):
            send.send_nowait(item)
        await wait_all_tasks_blocked()
        assert got == [(0, 10), (1, 11), (2, 12)]

        senders = []
        for item in (20, 21, 22):
            senders.append(spawn(send.send(item)))
            await wait_all_tasks_blocked()
        assert [await receive.receive() for _ in range(3)] == [20, 21, 22]
        await asyncio.gather(*senders)
        send.close()
        receive.close()
    run(main)


# -- cancellation never loses or duplicates an item ------------------------------------


def test_shielded_receiver_in_a_cancelled_region_gets_the_item(run) -> None:  # type: ignore[no-untyped-def]
    """Shared scenario: a shielded receiver is not about to be cancelled."""
    run(load("stream_shielded_receiver").main)


def test_receiver_being_cancelled_is_skipped(run) -> None:  # type: ignore[no-untyped-def]
    """A receiver whose cancellation is being delivered does not swallow the item."""
    async def main() -> None:
        send, receive = create_memory_object_stream[int]()
        scopes: list[CancelScope] = []
        got: list[int] = []

        async def receiver() -> None:
            with CancelScope() as scope:
                scopes.append(scope)
                got.append(await receive.receive())

        doomed = spawn(receiver())
        await wait_all_tasks_blocked()
        survivor = spawn(receiver())
        await wait_all_tasks_blocked()
        scopes[0].cancel()      # the first receiver's future is cancelled right here
        send.send_nowait(1)     # same step: the item must go to the second receiver
        await asyncio.gather(doomed, survivor)
        assert got == [1]
        assert scopes[0].cancelled_caught
        send.close()
        receive.close()
    run(main)


def test_cancelled_receiver_leaves_the_item_for_the_sender(run) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        send, receive = create_memory_object_stream[int]()
        scope = CancelScope()

        async def receiver() -> None:
            with scope:
                await receive.receive()

        task = spawn(receiver())
        await wait_all_tasks_blocked()
        scope.cancel()
        with pytest.raises(WouldBlock):   # nobody left to take it
            send.send_nowait(1)
        await task
        assert receive.statistics().tasks_waiting_receive == 0
        send.close()
        receive.close()
    run(main)


def test_item_handed_over_then_cancelled_is_returned(run) -> None:  # type: ignore[no-untyped-def]
    """The receiver's future got the item, then its scope was cancelled before it ran:
    receive() returns the item and the next checkpoint raises."""
    async def main() -> None:
        send, receive = create_memory_object_stream[int]()
        scope = CancelScope()
        got: list[int] = []
        reached_checkpoint = []

        async def receiver() -> None:
            with scope:
                got.append(await receive.receive())
                reached_checkpoint.append(True)
                await scopeloop.checkpoint()
                got.append(-1)  # never reached

        task = spawn(receiver())
        await wait_all_tasks_blocked()
        send.send_nowait(5)
        scope.cancel()
        await task
        assert got == [5]
        assert reached_checkpoint == [True]
        assert scope.cancelled_caught
        send.close()
        receive.close()
    run(main)


def test_item_handed_over_then_natively_cancelled_is_returned(run) -> None:  # type: ignore[no-untyped-def]
    """As above with Task.cancel(): the completed receive returns the item, the native
    cancellation is raised at the next suspension and counted once."""
    async def main() -> None:
        send, receive = create_memory_object_stream[int]()
        got: list[int] = []
        counts: list[int] = []

        async def receiver() -> None:
            got.append(await receive.receive())
            counts.append(asyncio.current_task().cancelling())  # type: ignore[union-attr]
            await asyncio.sleep(0)
            got.append(-1)  # never reached

        task = spawn(receiver())
        await wait_all_tasks_blocked()
        send.send_nowait(5)    # handed to the waiting receiver...
        task.cancel("stop")    # ...which is cancelled before it runs
        with pytest.raises(asyncio.CancelledError, match="stop"):
            await task
        assert got == [5]
        assert counts == [1]
        send.close()
        receive.close()
    run(main)


def test_asyncio_timeout_firing_after_the_hand_off(run) -> None:  # type: ignore[no-untyped-def]
    """asyncio.timeout() expires after the item was handed over but before the receiver
    ran: the receive completed, so it returns the item; the timeout's exit withdraws
    its request and no cancellation is left over for a later await (on Python 3.11 and
    3.12 asyncio cannot withdraw an interrupt once it is armed, so it must not be)."""
    async def main() -> None:
        send, receive = create_memory_object_stream[int]()
        timeouts: list[Any] = []
        log: list[object] = []

        async def receiver() -> None:
            task = asyncio.current_task()
            assert task is not None
            try:
                async with asyncio.timeout(None) as timeout:
                    timeouts.append(timeout)
                    log.append(await receive.receive())
            except TimeoutError:
                log.append("timeout")
            await asyncio.sleep(0)  # nothing left over
            await asyncio.sleep(0)
            log.append(task.cancelling())

        task = spawn(receiver())
        await wait_all_tasks_blocked()
        send.send_nowait(7)
        timeouts[0]._on_timeout()  # the timer firing in this very iteration
        await task
        assert log == [7, 0]
        send.close()
        receive.close()
    run(main)


def test_item_taken_then_sender_cancelled_send_returns(run) -> None:  # type: ignore[no-untyped-def]
    """A waiting sender whose item was taken completed its send, even if a scope or
    native cancellation arrives before it runs again: send() returns, then the next
    checkpoint raises."""
    async def main() -> None:
        for native in (False, True):
            send, receive = create_memory_object_stream[int]()
            scope = CancelScope()
            sent: list[int] = []

            async def sender() -> None:
                with scope:
                    await send.send(1)
                    sent.append(1)
                    await asyncio.sleep(0)
                    sent.append(-1)  # never reached

            task = spawn(sender())
            await wait_all_tasks_blocked()
            assert receive.receive_nowait() == 1
            if native:
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
            else:
                scope.cancel()
                await task
                assert scope.cancelled_caught
            assert sent == [1]
            send.close()
            receive.close()
    run(main)


def test_native_cancel_after_the_item_was_taken_can_be_withdrawn(run) -> None:  # type: ignore[no-untyped-def]
    """The send completed, then a native cancel() arrived before the sender ran; the
    sender (like asyncio.timeout's exit) withdraws it with uncancel() before it next
    suspends: nothing is raised later, on every Python version."""
    async def main() -> None:
        send, receive = create_memory_object_stream[int]()
        log: list[str] = []

        async def sender() -> None:
            task = asyncio.current_task()
            assert task is not None
            await send.send(1)
            log.append(f"sent, cancelling={task.cancelling()}")
            task.uncancel()
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            log.append("clean")

        task = spawn(sender())
        await wait_all_tasks_blocked()
        assert receive.receive_nowait() == 1
        task.cancel()
        await task
        assert log == ["sent, cancelling=1", "clean"]
        send.close()
        receive.close()
    run(main)


def test_native_cancel_after_the_item_was_taken_is_not_folded_into_a_scope(run) -> None:  # type: ignore[no-untyped-def]
    """The late native cancel() must arrive as a native CancelledError even if a cancel
    scope interrupts the task first: folded into the scope's error, the scope would
    swallow it and the request would be lost."""
    async def main() -> None:
        send, receive = create_memory_object_stream[int]()
        scopes: dict[int, CancelScope] = {}
        log: list[tuple[Any, ...]] = []

        async def sender() -> None:
            task = asyncio.current_task()
            assert task is not None
            async with send:
                for item in (1, 2, 3):
                    try:
                        with CancelScope() as scopes[item]:
                            await send.send(item)
                            log.append(("sent", item))
                    except asyncio.CancelledError:
                        log.append(("native", task.cancelling()))
                        task.uncancel()
            try:  # before 3.13 the late cancel() waits for a suspension: offer one
                await asyncio.sleep(0)
            except asyncio.CancelledError:
                log.append(("native", task.cancelling()))
                task.uncancel()
            log.append(("end", task.cancelling()))

        task = spawn(sender())
        await wait_all_tasks_blocked()
        received = [receive.receive_nowait()]
        task.cancel()               # the send of 1 completed: this is delivered later
        await wait_all_tasks_blocked()
        scopes[2].cancel()          # a scope interrupts the next send first (or no-op)
        async with receive:
            received += [item async for item in receive]
        await task
        assert log.count(("native", 1)) == 1
        assert log[-1] == ("end", 0)
        assert received == [entry[1] for entry in log if entry[0] == "sent"]
    run(main)


def test_cancelled_send_does_not_deliver(run) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        send, receive = create_memory_object_stream[int]()
        for native in (False, True):
            scope = CancelScope()

            async def sender() -> None:
                with scope:
                    await send.send(1)

            task = spawn(sender())
            await wait_all_tasks_blocked()
            if native:
                task.cancel()
            else:
                scope.cancel()
            with pytest.raises(WouldBlock):
                receive.receive_nowait()   # same step: the item is withdrawn already
            await asyncio.gather(task, return_exceptions=True)
            assert send.statistics().tasks_waiting_send == 0
        send.close()
        receive.close()
    run(main)


def test_send_and_receive_are_cancel_points(run) -> None:  # type: ignore[no-untyped-def]
    """In a cancelled scope they raise without delivering or consuming, even when they
    would not have to wait; inside a shield they work."""
    async def main() -> None:
        send, receive = create_memory_object_stream[int](math.inf)
        with CancelScope() as scope:
            scope.cancel()
            with pytest.raises(asyncio.CancelledError):
                await send.send(1)
            with CancelScope(shield=True):
                await send.send(2)
            with pytest.raises(asyncio.CancelledError):
                await receive.receive()
            with CancelScope(shield=True):
                assert await receive.receive() == 2
            send.send_nowait(3)  # the *_nowait() forms are not checkpoints
            assert receive.receive_nowait() == 3
            await asyncio.sleep(0)
        assert scope.cancelled_caught
        assert send.statistics().current_buffer_used == 0
        send.close()
        receive.close()
    run(main)


def test_receive_interrupted_by_another_error_puts_the_item_back(run) -> None:  # type: ignore[no-untyped-def]
    """If a receive is torn down after the item was handed over (here: an exception
    thrown into it), the item goes back to the head of the stream."""
    async def main() -> None:
        send, receive = create_memory_object_stream[int](math.inf)
        coro = receive.receive()
        waiter = coro.send(None)          # blocks: the stream is empty
        assert isinstance(waiter, asyncio.Future)
        send.send_nowait(1)               # handed to the blocked receive
        send.send_nowait(2)
        with pytest.raises(KeyError):
            coro.throw(KeyError("torn down"))
        assert [receive.receive_nowait(), receive.receive_nowait()] == [1, 2]
        send.close()
        receive.close()
    run(main)
