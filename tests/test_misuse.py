"""Misuse gets a clear error, never a hang or a spin, and the loop stays usable (DESIGN §3.6).

Each misuse is followed by ordinary scope work on the same loop (``scopes_still_work``)
to show that nothing was left half-entered or still cancelled.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

import scopeloop
from scopeloop import CancelScope

CancelledError = asyncio.CancelledError

# The words a message must contain to name the ways to get a scopeloop loop.
FIXES = ("scopeloop.run", "loop_factory=scopeloop.new_event_loop", "EventLoopPolicy")


def cancelling() -> int:
    task = asyncio.current_task()
    assert task is not None
    return task.cancelling()


async def scopes_still_work() -> None:
    """Ordinary scope work: cancel, deadline, shield; nothing left over before or after."""
    assert cancelling() == 0
    await asyncio.sleep(0)           # nothing pending from the misuse
    outer_deadline = scopeloop.current_effective_deadline()
    assert outer_deadline == math.inf
    with CancelScope() as scope:
        scope.cancel()
        await asyncio.sleep(0)
        pytest.fail("not reached")
    assert scope.cancelled_caught
    with scopeloop.move_on_after(0.001) as timed:
        await asyncio.sleep(1000)
    assert timed.cancelled_caught
    with CancelScope() as outer:
        outer.cancel()
        with CancelScope(shield=True):
            await asyncio.sleep(0)
        await asyncio.sleep(0)
    assert outer.cancelled_caught
    assert cancelling() == 0
    await asyncio.sleep(0)


def assert_no_spin(wall: float, cpu: float) -> None:
    assert cpu < 0.5 * wall, f"{cpu:.3f}s CPU in {wall:.3f}s wall: the loop spins"


# -- exiting out of order, in another task, entering twice ------------------------------


def test_exit_out_of_order(run):
    async def main():
        outer, inner = CancelScope(), CancelScope()
        outer.__enter__()
        inner.__enter__()
        outer.cancel()
        with pytest.raises(RuntimeError, match="reverse order") as info:
            outer.__exit__(None, None, None)
        assert "nested 'with' blocks" in str(info.value)
        # Both are exited now: neither can be exited again, and the cancelled outer
        # scope no longer reaches the task.
        with pytest.raises(RuntimeError, match="not active"):
            inner.__exit__(None, None, None)
        with pytest.raises(RuntimeError, match="not active"):
            outer.__exit__(None, None, None)
        wall, cpu = time.monotonic(), time.process_time()
        await asyncio.sleep(0.1)
        assert_no_spin(time.monotonic() - wall, time.process_time() - cpu)
        await scopes_still_work()

    run(main)


def test_exit_out_of_order_with_deadline_leaves_no_timer(run):
    async def main():
        loop = asyncio.get_running_loop()
        outer = CancelScope()
        inner = CancelScope(deadline=loop.time() + 0.01)
        outer.__enter__()
        inner.__enter__()
        with pytest.raises(RuntimeError, match="reverse order"):
            outer.__exit__(None, None, None)
        await asyncio.sleep(0.05)           # the inner deadline passes: nothing happens
        assert not inner.cancel_called
        await scopes_still_work()

    run(main)


def test_exit_in_another_task(run):
    async def intruder(scope: CancelScope) -> str:
        with pytest.raises(RuntimeError) as info:
            scope.__exit__(None, None, None)
        return str(info.value)

    async def main():
        with CancelScope() as scope:
            message = await asyncio.create_task(intruder(scope), name="intruder")
            assert "must be exited in the task that entered it" in message
            assert "'intruder'" in message
            # The scope is still ours and still works.
            scope.cancel()
            await asyncio.sleep(0)
            pytest.fail("not reached")
        assert scope.cancelled_caught
        await scopes_still_work()

    run(main)


def test_exit_from_a_loop_callback(run):
    async def main():
        loop = asyncio.get_running_loop()
        errors: list[BaseException] = []

        def callback(scope: CancelScope) -> None:
            try:
                scope.__exit__(None, None, None)
            except RuntimeError as exc:
                errors.append(exc)

        with CancelScope() as scope:
            loop.call_soon(callback, scope)
            await asyncio.sleep(0)
            assert len(errors) == 1 and "outside any task" in str(errors[0])
        await scopes_still_work()

    run(main)


def test_enter_twice(run):
    async def main():
        scope = CancelScope()
        with scope:
            with pytest.raises(RuntimeError, match="already been entered"):
                with scope:
                    pytest.fail("not reached")
            await asyncio.sleep(0)
        with pytest.raises(RuntimeError, match="already been entered"):
            with scope:
                pytest.fail("not reached")
        with pytest.raises(RuntimeError, match="already been entered"):
            with scopeloop.move_on_after(1) as timed:
                timed.__enter__()
        await scopes_still_work()

    run(main)


def test_enter_in_a_second_task(run):
    async def second(scope: CancelScope) -> None:
        with scope:
            pytest.fail("not reached")

    async def main():
        scope = CancelScope()
        with scope:
            with pytest.raises(RuntimeError, match="already been entered"):
                await asyncio.create_task(second(scope))
        await scopes_still_work()

    run(main)


# -- scope API outside a task -----------------------------------------------------------


SCOPE_APIS: dict[str, Callable[[], Any]] = {
    "CancelScope.__enter__": lambda: CancelScope().__enter__(),
    # Their delay counts from entering (as in Trio), so misuse shows when entered.
    "move_on_after": lambda: scopeloop.move_on_after(1).__enter__(),
    "fail_after": lambda: scopeloop.fail_after(1).__enter__(),
    "current_effective_deadline": scopeloop.current_effective_deadline,
    "get_current_task": scopeloop.get_current_task,
}


@pytest.mark.parametrize("api", sorted(SCOPE_APIS))
def test_scope_api_without_a_loop(api):
    with pytest.raises(RuntimeError) as info:
        SCOPE_APIS[api]()
    for fix in FIXES:
        assert fix in str(info.value), str(info.value)


@pytest.mark.parametrize("api", sorted(SCOPE_APIS))
def test_scope_api_in_another_thread(api):
    errors: list[BaseException] = []

    def thread() -> None:
        try:
            SCOPE_APIS[api]()
        except BaseException as exc:
            errors.append(exc)

    worker = threading.Thread(target=thread)
    worker.start()
    worker.join()
    assert len(errors) == 1 and isinstance(errors[0], RuntimeError)
    for fix in FIXES:
        assert fix in str(errors[0]), str(errors[0])


@pytest.mark.parametrize("api", sorted(SCOPE_APIS))
def test_scope_api_in_a_loop_callback(run, api):
    async def main():
        loop = asyncio.get_running_loop()
        errors: list[BaseException] = []

        def callback() -> None:
            try:
                SCOPE_APIS[api]()
            except BaseException as exc:
                errors.append(exc)

        loop.call_soon(callback)
        await asyncio.sleep(0)
        assert len(errors) == 1 and isinstance(errors[0], RuntimeError)
        assert "inside a task" in str(errors[0])
        await scopes_still_work()

    run(main)


# -- scope API in a task the loop did not create ----------------------------------------


ASYNC_SCOPE_APIS: dict[str, Callable[[], Any]] = {
    "create_task_group": lambda: scopeloop.create_task_group().__aenter__(),
    "wait_all_tasks_blocked": scopeloop.wait_all_tasks_blocked,
}


def test_scope_api_on_stock_asyncio_run():
    async def main() -> list[str]:
        messages = []
        for api in sorted(SCOPE_APIS):
            with pytest.raises(RuntimeError) as info:
                SCOPE_APIS[api]()
            messages.append(str(info.value))
        for api in sorted(ASYNC_SCOPE_APIS):
            with pytest.raises(RuntimeError) as info:
                await ASYNC_SCOPE_APIS[api]()
            messages.append(str(info.value))
        # The stock loop itself is untouched.
        async with asyncio.timeout(1000):
            await asyncio.sleep(0)
        assert cancelling() == 0
        return messages

    messages = asyncio.run(main())
    assert len(messages) == len(SCOPE_APIS) + len(ASYNC_SCOPE_APIS)
    for message in messages:
        assert "not a scopeloop loop" in message, message
        for fix in FIXES:
            assert fix in message, message


def test_scope_api_in_a_foreign_task_on_a_scopeloop_loop(run):
    async def foreign() -> str:
        with pytest.raises(RuntimeError) as info:
            CancelScope().__enter__()
        return str(info.value)

    async def main():
        loop = asyncio.get_running_loop()
        # A user task factory that builds stock tasks.
        loop.set_task_factory(lambda loop, coro, **kwargs: asyncio.Task(coro, loop=loop, **kwargs))
        task = asyncio.create_task(foreign())
        assert type(task) is asyncio.Task
        message = await task
        assert "scopeloop.Task" in message and "eager_task_factory" in message
        loop.set_task_factory(None)
        # A stock Task built by hand on a scopeloop loop.
        message = await asyncio.Task(foreign(), loop=loop)
        assert "needs a scopeloop Task" in message
        await scopes_still_work()
        await asyncio.create_task(scopes_still_work())

    run(main)


@pytest.mark.parametrize("started", [False, True], ids=["lazy", "started"])
def test_a_failing_task_factory_closes_the_coroutine(run, started):
    # As in AnyIO: the factory's error reaches the spawner, and the coroutine nobody
    # will run is closed (no "never awaited" warning), even one the factory started.
    from inspect import CORO_CLOSED, CORO_SUSPENDED, getcoroutinestate

    class FactoryFailed(Exception):
        pass

    states = []

    async def child() -> None:
        await asyncio.sleep(0)

    def failing_factory(loop, coro, **kwargs):
        if started:
            coro.send(None)
        states.append(getcoroutinestate(coro))
        raise FactoryFailed

    async def main():
        loop = asyncio.get_running_loop()
        async with scopeloop.create_task_group() as tg:
            coro = child()
            loop.set_task_factory(failing_factory)
            try:
                with pytest.raises(FactoryFailed):
                    tg.start_soon(lambda: coro)
            finally:
                loop.set_task_factory(None)
            assert getcoroutinestate(coro) == CORO_CLOSED
            tg.start_soon(child)  # the group still works
        assert states == ([CORO_SUSPENDED] if started else ["CORO_CREATED"])

    run(main)


# -- bad arguments --------------------------------------------------------------------


def test_bad_arguments(run):
    async def main():
        nan = float("nan")
        with pytest.raises(TypeError, match="deadline"):
            CancelScope(deadline="x")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="deadline"):
            CancelScope(deadline=None)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="NaN"):
            CancelScope(deadline=nan)
        with pytest.raises(TypeError, match="shield"):
            CancelScope(shield="yes")  # type: ignore[arg-type]
        for factory in (scopeloop.move_on_after, scopeloop.fail_after):
            with pytest.raises(TypeError, match="delay"):
                factory("x")  # type: ignore[arg-type]
            with pytest.raises(ValueError, match="NaN"):
                factory(nan)
        for factory in (scopeloop.move_on_at, scopeloop.fail_at):
            with pytest.raises(TypeError, match="deadline"):
                factory("x")  # type: ignore[arg-type]
            with pytest.raises(ValueError, match="NaN"):
                factory(nan)
        with CancelScope(deadline=1e9) as scope:
            with pytest.raises(TypeError, match="deadline"):
                scope.deadline = "x"  # type: ignore[assignment]
            with pytest.raises(ValueError, match="NaN"):
                scope.deadline = nan
            with pytest.raises(TypeError, match="shield"):
                scope.shield = 1  # type: ignore[assignment]
            assert scope.deadline == 1e9 and scope.shield is False   # unchanged
            await asyncio.sleep(0)
        assert not scope.cancel_called
        await scopes_still_work()

    run(main)


def test_unknown_backend_lists_valid_names(monkeypatch):
    with pytest.raises(ValueError) as info:
        scopeloop.new_event_loop(backend="nope")
    for name in scopeloop.BACKENDS:
        assert repr(name) in str(info.value)
    with pytest.raises(ValueError, match="valid backends"):
        scopeloop.EventLoopPolicy(backend="nope")
    monkeypatch.setenv("SCOPELOOP_BACKEND", "nope")
    with pytest.raises(ValueError, match="SCOPELOOP_BACKEND") as info:
        scopeloop.new_event_loop()
    for name in scopeloop.BACKENDS:
        assert repr(name) in str(info.value)
    monkeypatch.delenv("SCOPELOOP_BACKEND")
    loop = scopeloop.new_event_loop()   # still fine with a valid choice
    loop.close()


def test_run_with_bad_main(backend):
    def not_async() -> int:
        return 1

    async def takes_arg(x: int) -> int:
        return x

    with pytest.raises(TypeError, match="async function"):
        scopeloop.run(42, backend=backend)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="async def"):
        scopeloop.run(not_async, backend=backend)  # type: ignore[arg-type]
    coro = takes_arg(1)
    with pytest.raises(TypeError, match="extra arguments"):
        scopeloop.run(coro, 2, backend=backend)
    coro.close()
    assert scopeloop.run(takes_arg, 3, backend=backend) == 3


def test_task_group_exit_in_another_task_names_both_and_says_how_to_fix_it(run):
    async def intruder(group: scopeloop.TaskGroup) -> str:
        with pytest.raises(RuntimeError) as info:
            await group.__aexit__(None, None, None)
        return str(info.value)

    async def main():
        asyncio.current_task().set_name("owner")
        async with scopeloop.create_task_group() as group:
            message = await asyncio.create_task(intruder(group), name="intruder")
            group.start_soon(asyncio.sleep, 0)  # still open, and still ours
        return message

    message = run(main)
    assert "a TaskGroup must be exited in the task that entered it" in message
    assert "'owner'" in message and "'intruder'" in message
    assert "keep each 'async with create_task_group()' block inside one task" in message
