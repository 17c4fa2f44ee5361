"""to_thread.run_sync, from_thread.run/run_sync/check_cancelled, and cancellation.

Threads signal the loop with ``from_thread.run_sync(event.set)`` and wait on
``threading.Event``s the test sets, so every ordering below is forced, not timed.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

import scopeloop
from scopeloop import CancelScope, create_task_group, from_thread, to_thread
from scopeloop.sync import CapacityLimiter

Run = Callable[..., Any]

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


def cancelling() -> int:
    task = asyncio.current_task()
    assert task is not None
    return task.cancelling()


class Gate:
    """A worker announces it is running (to the loop) and waits to be let go."""

    def __init__(self) -> None:
        self.running = asyncio.Event()
        self.release = threading.Event()

    def arrive_and_wait(self) -> None:
        from_thread.run_sync(self.running.set)
        if not self.release.wait(timeout=10):
            raise AssertionError("the test never released the worker")


def test_runs_in_a_worker_with_the_callers_context(run: Run) -> None:
    async def main() -> None:
        request_id.set("r1")

        def work(a: int, b: int) -> tuple[int, str, int]:
            return a + b, request_id.get(), threading.get_ident()

        total, seen, ident = await to_thread.run_sync(work, 2, 3)
        assert (total, seen) == (5, "r1")
        assert ident != threading.get_ident()
        # The worker is idle again before its result is reported: the next call reuses it.
        assert (await to_thread.run_sync(work, 0, 0))[2] == ident

    run(main)


def test_exceptions_propagate(run: Run) -> None:
    async def main() -> None:
        def fail() -> None:
            raise ValueError("from the thread")

        with pytest.raises(ValueError, match="from the thread"):
            await to_thread.run_sync(fail)

        def stop() -> None:
            raise StopIteration

        # As on Trio: Python's RuntimeError for a StopIteration leaving a coroutine.
        with pytest.raises(RuntimeError, match="^coroutine raised StopIteration") as info:
            await to_thread.run_sync(stop)
        assert type(info.value.__cause__) is StopIteration
        assert "to_thread.run_sync()" in info.value.__notes__[0]
        with pytest.raises(TypeError, match="callable"):
            await to_thread.run_sync(42)  # type: ignore[arg-type]

    run(main)


def test_already_cancelled_does_not_start_the_thread(run: Run) -> None:
    async def main() -> None:
        called = []
        with CancelScope() as scope:
            scope.cancel()
            await to_thread.run_sync(called.append, 1)
        assert scope.cancelled_caught and called == []
        assert cancelling() == 0

    run(main)


@pytest.mark.parametrize("rounds", [1, 20])
def test_cancel_waits_for_the_thread(run: Run, rounds: int) -> None:
    """Without abandon_on_cancel, the call finishes; the caller raises at its next checkpoint."""
    async def main() -> None:
        for _ in range(rounds):
            gate = Gate()
            steps: list[str] = []

            def work() -> str:
                gate.arrive_and_wait()
                return "finished"

            async def caller() -> None:
                with CancelScope() as scope:
                    steps.append(await to_thread.run_sync(work))
                    steps.append("returned")
                    await scopeloop.checkpoint()
                    steps.append("not reached")
                assert scope.cancelled_caught
                assert cancelling() == 0
                await scopeloop.checkpoint()  # nothing of the cancellation is left
                steps.append("after")

            async with create_task_group() as tg:
                tg.start_soon(caller)
                await gate.running.wait()
                tg.cancel_scope.cancel()
                with CancelScope(shield=True):  # this task is in the cancelled group too
                    await scopeloop.wait_all_tasks_blocked()
                assert steps == []  # still waiting for the thread, behind a shield
                gate.release.set()
            assert steps == ["finished", "returned"]
            assert cancelling() == 0

    run(main)


def test_cancel_abandons_the_thread_when_asked(run: Run) -> None:
    async def main() -> None:
        gate = Gate()
        finished = threading.Event()
        limiter = to_thread.current_default_thread_limiter()

        def work() -> str:
            gate.arrive_and_wait()
            finished.set()
            return "discarded"

        with CancelScope() as scope:
            async with create_task_group() as tg:
                async def cancel_when_running() -> None:
                    await gate.running.wait()
                    scope.cancel()
                tg.start_soon(cancel_when_running)
                await to_thread.run_sync(work, abandon_on_cancel=True)
        assert scope.cancelled_caught
        assert not finished.is_set()  # the thread is still running
        assert limiter.borrowed_tokens == 0  # and gave its token back
        assert cancelling() == 0
        gate.release.set()
        # Its result is dropped; the loop and the next call are unaffected.
        await to_thread.run_sync(finished.wait)
        assert await to_thread.run_sync(lambda: "next") == "next"

    run(main)


def test_native_cancel_waits_then_propagates(run: Run) -> None:
    async def main() -> None:
        gate = Gate()
        steps: list[str] = []

        def work() -> None:
            gate.arrive_and_wait()
            steps.append("thread done")

        task = asyncio.get_running_loop().create_task(to_thread.run_sync(work))
        await gate.running.wait()
        task.cancel()
        task.cancel()  # a second request while waiting changes nothing
        await scopeloop.wait_all_tasks_blocked()
        assert not task.done()
        gate.release.set()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert steps == ["thread done"]
        assert task.cancelling() == 2  # the native requests, untouched

        gate = Gate()
        task = asyncio.get_running_loop().create_task(
            to_thread.run_sync(gate.arrive_and_wait, abandon_on_cancel=True))
        await gate.running.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task  # at once, the thread still waits
        gate.release.set()

    run(main)


def test_check_cancelled(run: Run) -> None:
    async def main() -> None:
        gate = Gate()
        seen: list[str] = []

        def work() -> str:
            from_thread.check_cancelled()  # not cancelled yet: returns
            seen.append("first check passed")
            gate.arrive_and_wait()
            from_thread.check_cancelled()  # raises: the caller's scope was cancelled
            seen.append("not reached")
            return "not reached"

        async with create_task_group() as tg:
            async def cancel_when_running() -> None:
                await gate.running.wait()
                tg.cancel_scope.cancel()
                with CancelScope(shield=True):
                    await scopeloop.wait_all_tasks_blocked()
                gate.release.set()
            tg.start_soon(cancel_when_running)
            await to_thread.run_sync(work)
        # The CancelledError from check_cancelled() carried the scope's message, so the
        # group's scope caught it like its own.
        assert tg.cancel_scope.cancelled_caught
        assert seen == ["first check passed"]
        assert cancelling() == 0

    run(main)


class CheckAfterCancel:
    """The loop cancels the caller and, in the same step, lets the worker go and
    blocks until the worker has called check_cancelled(): the waiting task cannot
    have woken by then, yet the cancellation has been made."""

    def __init__(self, lib: Any) -> None:
        self._lib = lib
        self._cancelled = threading.Event()
        self._checked = threading.Event()
        self.seen: list[Any] = []

    def work(self) -> None:
        self._cancelled.wait(5)
        try:
            self._lib.from_thread.check_cancelled()
        except BaseException:
            self.seen.append("worker: cancelled")
            raise
        else:
            self.seen.append("worker: not cancelled")
        finally:
            self._checked.set()

    async def cancel_then_release(self, wait_blocked: Any, cancel: Callable[[], Any]) -> None:
        await wait_blocked()
        cancel()
        self._cancelled.set()
        self._checked.wait(5)  # blocks the loop on purpose


async def _worker_checks_before_the_caller_wakes(lib: Any, open_group: Any,
                                                 wait_blocked: Any) -> list[Any]:
    handshake = CheckAfterCancel(lib)
    async with open_group() as group:
        group.start_soon(handshake.cancel_then_release, wait_blocked, group.cancel_scope.cancel)
        await lib.to_thread.run_sync(handshake.work)
        handshake.seen.append("run_sync returned")
    handshake.seen.append(("caught", group.cancel_scope.cancelled_caught))
    return handshake.seen


def test_check_cancelled_sees_a_cancel_before_the_caller_wakes(run: Run) -> None:
    """As in Trio, check_cancelled() sees a scope's cancel() at once, not only once
    the waiting task has woken (AnyIO's test_thread_cancelled raced on this)."""
    import trio
    import trio.testing

    expected = trio.run(_worker_checks_before_the_caller_wakes, trio, trio.open_nursery,
                        trio.testing.wait_all_tasks_blocked)
    assert expected == ["worker: cancelled", ("caught", True)]
    assert run(_worker_checks_before_the_caller_wakes, scopeloop,
               scopeloop.create_task_group, scopeloop.wait_all_tasks_blocked) == expected


def test_check_cancelled_sees_a_native_cancel_before_the_caller_wakes(run: Run) -> None:
    async def main() -> None:
        caller = asyncio.current_task()
        assert caller is not None
        handshake = CheckAfterCancel(scopeloop)
        canceller = asyncio.create_task(handshake.cancel_then_release(
            scopeloop.wait_all_tasks_blocked, lambda: caller.cancel("native")))
        with pytest.raises(asyncio.CancelledError) as info:
            await to_thread.run_sync(handshake.work)
        assert info.value.args == ("native",)  # the native request, re-raised
        assert handshake.seen == ["worker: cancelled"]
        assert caller.uncancel() == 0
        await canceller

    run(main)


def test_check_cancelled_sees_no_cancellation_behind_a_shield(run: Run) -> None:
    async def main() -> None:
        gate = Gate()

        def work() -> str:
            gate.arrive_and_wait()
            from_thread.check_cancelled()
            return "ran to the end"

        with CancelScope() as outer:
            async with create_task_group() as tg:
                async def cancel_when_running() -> None:
                    await gate.running.wait()
                    outer.cancel()
                    with CancelScope(shield=True):
                        await scopeloop.wait_all_tasks_blocked()
                    gate.release.set()
                tg.start_soon(cancel_when_running)
                with CancelScope(shield=True):
                    assert await to_thread.run_sync(work) == "ran to the end"

    run(main)


def test_from_thread_run_and_run_sync(run: Run) -> None:
    async def main() -> None:
        loop_thread = threading.get_ident()
        request_id.set("r2")

        async def add(a: int, b: int) -> tuple[int, str, int]:
            await asyncio.sleep(0)
            return a + b, request_id.get(), threading.get_ident()

        def fail_async() -> None:
            async def boom() -> None:
                raise KeyError("async")
            from_thread.run(boom)

        def work() -> Any:
            async_result = from_thread.run(add, 1, 2)
            sync_result = from_thread.run_sync(lambda: (request_id.get(), threading.get_ident()))
            with pytest.raises(KeyError, match="async"):
                fail_async()
            with pytest.raises(ZeroDivisionError):
                from_thread.run_sync(lambda: 1 / 0)
            return async_result, sync_result

        async_result, sync_result = await to_thread.run_sync(work)
        assert async_result == (3, "r2", loop_thread)
        assert sync_result == ("r2", loop_thread)

    run(main)


def test_from_thread_run_is_cancelled_with_the_caller(run: Run) -> None:
    async def main() -> None:
        entered = asyncio.Event()

        async def wait_forever() -> None:
            entered.set()
            await scopeloop.sleep_forever()

        def work() -> str:
            try:
                from_thread.run(wait_forever)
            except asyncio.CancelledError:
                pass
            else:
                return "not cancelled"
            # Once the caller is cancelled, new calls into the loop are cancelled at once.
            with pytest.raises(asyncio.CancelledError):
                from_thread.run(asyncio.sleep, 0)
            return "stopped"

        async with create_task_group() as tg:
            async def cancel_when_entered() -> None:
                await entered.wait()
                tg.cancel_scope.cancel()
            tg.start_soon(cancel_when_entered)
            results = [await to_thread.run_sync(work)]
            await scopeloop.checkpoint()  # raises: the caller's scope is cancelled
            results.append("not reached")
        assert results == ["stopped"]
        assert tg.cancel_scope.cancelled_caught
        assert cancelling() == 0

    run(main)


async def _abandoned_worker_calls_back(lib: Any) -> list[object]:
    seen: list[object] = []
    caller_gone, finished, thread_done = lib.Event(), lib.Event(), threading.Event()

    async def in_loop() -> str:
        scope.cancel()
        await caller_gone.wait()  # no caller's cancellation reaches this task
        seen.append("finished in the loop")
        finished.set()
        return "value"

    def work() -> None:
        seen.append(("the thread got", lib.from_thread.run(in_loop)))
        thread_done.set()

    with lib.CancelScope() as scope:
        await lib.to_thread.run_sync(work, abandon_on_cancel=True)
    seen.append(("caller cancelled", scope.cancelled_caught))
    caller_gone.set()
    with lib.move_on_after(5):  # (a bound, so that a wrong outcome fails, not hangs)
        await finished.wait()
    seen.append(await lib.to_thread.run_sync(thread_done.wait, 5))
    return seen


def test_from_thread_run_in_an_abandoned_worker_outlives_the_caller(run: Run) -> None:
    """A worker started with abandon_on_cancel=True calls into the loop linked to no
    caller, as in Trio (there: the system nursery): the caller does not wait for the
    thread, so cancelling the caller does not cut the thread's work short."""
    import trio

    expected = trio.run(_abandoned_worker_calls_back, trio)
    assert expected == [("caller cancelled", True), "finished in the loop",
                        ("the thread got", "value"), True]
    assert run(_abandoned_worker_calls_back, scopeloop) == expected


def test_a_finished_loop_is_freed(run: Run) -> None:
    """Nothing of scopeloop's keeps a loop alive once it has finished (AnyIO's #1203
    test): not the worker pool, nor the 3.11 running-task cache of the primitives."""
    import gc
    import weakref

    async def main() -> weakref.ref[asyncio.AbstractEventLoop]:
        await to_thread.run_sync(int)
        event = scopeloop.Event()
        event.set()
        await event.wait()
        return weakref.ref(asyncio.get_running_loop())

    loop = run(main)
    gc.collect()
    assert loop() is None


def test_from_thread_outside_a_worker_is_an_error(run: Run) -> None:
    async def main() -> None:
        for call in (lambda: from_thread.run(asyncio.sleep, 0),
                     lambda: from_thread.run_sync(print),
                     from_thread.check_cancelled):
            with pytest.raises(RuntimeError, match=r"to_thread\.run_sync"):
                call()

    run(main)
    # A thread that to_thread did not start cannot use it either.
    errors: list[BaseException] = []

    def foreign() -> None:
        try:
            from_thread.check_cancelled()
        except RuntimeError as exc:
            errors.append(exc)

    thread = threading.Thread(target=foreign)
    thread.start()
    thread.join()
    assert len(errors) == 1


def test_capacity_limiter_bounds_the_threads(run: Run) -> None:
    async def main() -> None:
        limiter = CapacityLimiter(2)
        release = threading.Event()
        lock = threading.Lock()
        active = [0, 0]  # now, most ever
        arrivals = [0]
        two_running = asyncio.Event()

        def arrived() -> None:
            arrivals[0] += 1
            if arrivals[0] == 2:
                two_running.set()

        def work() -> None:
            with lock:
                active[0] += 1
                active[1] = max(active)
            from_thread.run_sync(arrived)
            release.wait(timeout=10)
            with lock:
                active[0] -= 1

        async with create_task_group() as tg:
            for _ in range(5):
                tg.start_soon(lambda: to_thread.run_sync(work, limiter=limiter))
            await two_running.wait()
            await scopeloop.wait_all_tasks_blocked()
            assert limiter.borrowed_tokens == 2  # the other three wait for a token
            assert arrivals == [2]
            release.set()
        assert active == [0, 2] and arrivals == [5]

        default = to_thread.current_default_thread_limiter()
        assert default.total_tokens == 40
        assert to_thread.current_default_thread_limiter() is default

    run(main)
    other: list[Any] = []

    async def another_loop() -> None:
        other.append(to_thread.current_default_thread_limiter())

    run(another_loop)
    assert other[0].total_tokens == 40


def test_a_cancelled_wait_costs_no_cpu(run: Run) -> None:
    """While a cancelled caller waits for its thread, the loop is idle."""
    async def main() -> None:
        gate = Gate()
        async with create_task_group() as tg:
            tg.start_soon(to_thread.run_sync, gate.arrive_and_wait)
            await gate.running.wait()
            with CancelScope(shield=True):  # this task stays out of the cancellation
                tg.cancel_scope.cancel()
                cpu, wall = time.process_time(), time.monotonic()
                await asyncio.sleep(0.3)
                cpu, wall = time.process_time() - cpu, time.monotonic() - wall
            gate.release.set()
        assert cpu < wall / 3, f"{cpu:.3f} s of CPU in {wall:.3f} s while waiting"

    run(main)
