"""Task handles (AnyIO 4.14+): create_task, start_soon's handle, start(return_handle=),
TaskGroup.cancel, as_completed; reference: AnyIO on Trio."""

from __future__ import annotations

import asyncio
import contextvars
import sys
from typing import Any

import anyio
import pytest

import scopeloop


async def _handles(lib: Any) -> list[object]:
    seen: list[object] = []
    cancelled = lib.get_cancelled_exc_class()

    async def value(x: int) -> int:
        await lib.sleep(0)
        return x

    async def forever(log: list[str]) -> None:
        try:
            await lib.sleep_forever()
        except cancelled:
            log.append("cancelled")
            try:
                await lib.sleep(0)  # level-triggered: cancelled again
            except cancelled:
                log.append("cancelled again")
                raise

    async def shielded(release: Any, log: list[str]) -> str:
        with lib.CancelScope(shield=True):
            await release.wait()
            log.append("shield held")
        await lib.sleep(0)
        return "not reached"

    async def fail() -> None:
        await lib.sleep(0)
        raise KeyError("boom")

    async with lib.create_task_group() as tg:
        h1 = tg.create_task(value(1), name="first")
        h2 = tg.start_soon(value, 2)
        seen.append((h1.name, h1.status.name, type(h1).__name__))
        with pytest.raises(lib.TaskNotFinished):
            h1.return_value
        with pytest.raises(lib.TaskNotFinished):
            h1.exception
        seen.append((await h1, await h2, h1.status.name, h1.exception))

        # cancelling one handle cancels that task alone, level-triggered
        log: list[str] = []
        h3 = tg.start_soon(forever, log)
        sibling = tg.start_soon(value, 3)
        await lib.wait_all_tasks_blocked()
        h3.cancel()
        seen.append(h3.status.name)
        await h3.wait()
        seen.append((log, h3.status.name, await sibling, tg.cancel_scope.cancel_called))
        for read in ("return_value", "exception"):
            with pytest.raises(lib.TaskCancelled) as info:
                getattr(h3, read)
            seen.append(isinstance(info.value.__cause__, cancelled))
        with pytest.raises(lib.TaskCancelled):
            await h3
        h3.cancel()  # finished: nothing happens
        seen.append(h3.status.name)

        # a shield inside the task holds against its handle's cancellation
        release = lib.Event()
        shield_log: list[str] = []
        h4 = tg.start_soon(shielded, release, shield_log)
        await lib.wait_all_tasks_blocked()
        h4.cancel()
        await lib.wait_all_tasks_blocked()
        seen.append((h4.status.name, list(shield_log)))
        release.set()
        await h4.wait()
        seen.append((h4.status.name, shield_log))

        # start(return_handle=True)
        async def server(*, task_status: Any) -> str:
            task_status.started("ready")
            await lib.sleep(0)
            return "served"

        h5 = await tg.start(server, return_handle=True)
        seen.append((h5.start_value, await h5))
        with pytest.raises(RuntimeError):
            h1.start_value
        seen.append(await tg.start(server))

    # a failure: seen by the group (never lost) and by the handle
    with pytest.raises(ExceptionGroup) as group:
        async with lib.create_task_group() as tg:
            bad = tg.start_soon(fail)
            victim = tg.start_soon(forever, [])
    seen.append((repr(group.value.exceptions), bad.status.name, repr(bad.exception),
                 victim.status.name))
    with pytest.raises(lib.TaskFailed) as failed:
        bad.return_value
    seen.append((type(failed.value).__name__, repr(failed.value.__cause__)))
    with pytest.raises(lib.TaskFailed):
        await bad

    # awaiting a child that fails: its end wakes the wait before the group is
    # cancelled (TaskFailed), and the next checkpoint raises the cancellation
    with pytest.raises(ExceptionGroup):
        async with lib.create_task_group() as tg:
            awaited = tg.create_task(fail())
            try:
                await awaited
            except lib.TaskFailed as error:
                seen.append(("awaited", repr(error.__cause__), tg.cancel_scope.cancel_called))
            try:
                await lib.sleep(0)
            except cancelled:
                seen.append("then cancelled")
                raise

    # TaskGroup.cancel(reason)
    async with lib.create_task_group() as tg:
        h6 = tg.start_soon(forever, [])
        await lib.wait_all_tasks_blocked()
        tg.cancel("enough")
    seen.append((tg.cancel_scope.cancel_called, tg.cancel_scope.cancelled_caught,
                 h6.status.name))

    # cancelled before it ever ran: it runs to its first checkpoint
    ran: list[str] = []

    async def early() -> None:
        ran.append("ran")
        await lib.sleep(0)
        ran.append("not reached")

    async with lib.create_task_group() as tg:
        h7 = tg.start_soon(early)
        h7.cancel()
    seen.append((ran, h7.status.name, tg.cancel_scope.cancelled_caught))

    # a cancelled wait for a handle does not cancel its task
    async with lib.create_task_group() as tg:
        gate = lib.Event()

        async def gated() -> str:
            await gate.wait()
            return "finished"

        h8 = tg.start_soon(gated)
        with lib.move_on_after(0) as scope:
            await h8
        gate.set()
        seen.append((scope.cancelled_caught, await h8))
    return seen


def test_task_handles_match_anyio_on_trio(run: Any) -> None:
    expected = anyio.run(_handles, anyio, backend="trio")
    assert run(_handles, scopeloop) == expected
    assert expected[1] == (1, 2, "FINISHED", None)  # (what the reference says)


async def _as_completed(lib: Any) -> list[object]:
    seen: list[object] = []
    gates = [lib.Event() for _ in range(3)]

    async def value(i: int) -> int:
        await gates[i].wait()
        if i > 0:
            gates[i - 1].set()
        return i

    async def opener() -> None:
        await lib.wait_all_tasks_blocked()
        gates[2].set()

    async with lib.create_task_group() as tg:
        tg.start_soon(opener)
        async with lib.as_completed(value(0), value(1), value(2)) as finished:
            seen.append([handle.return_value async for handle in finished])

    # leaving the block early cancels the rest
    cancelled: list[str] = []

    async def slow() -> None:
        try:
            await lib.sleep_forever()
        except lib.get_cancelled_exc_class():
            cancelled.append("slow")
            raise

    async def quick() -> str:
        await lib.sleep(0)
        return "quick"

    async with lib.as_completed(slow(), quick()) as finished:
        async for handle in finished:
            seen.append(await handle)
            break
    seen.append(cancelled)

    # a failure cancels the others and is raised, not lost
    async def fail() -> None:
        await lib.sleep(0)
        raise OSError("down")

    with pytest.raises(ExceptionGroup) as group:
        async with lib.as_completed(slow(), fail()) as finished:
            async for handle in finished:
                seen.append(handle.status.name)
    seen.append(repr(group.value.exceptions))

    with pytest.raises(ValueError):
        async with lib.as_completed():
            pass
    return seen


def test_as_completed_matches_anyio_on_trio(run: Any) -> None:
    expected = anyio.run(_as_completed, anyio, backend="trio")
    assert run(_as_completed, scopeloop) == expected
    assert expected[0] == [2, 1, 0]


def test_as_completed_accepts_awaitables_that_are_not_coroutines(run: Any) -> None:
    async def main() -> list[int]:
        future = asyncio.get_running_loop().create_future()
        future.set_result(7)
        async with scopeloop.as_completed(future) as finished:
            return [handle.return_value async for handle in finished]

    assert run(main) == [7]


def test_create_task_runs_in_the_given_context(run: Any) -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="outer")

    async def read() -> str:
        return var.get()

    async def main() -> tuple[str, str]:
        context = contextvars.copy_context()
        context.run(var.set, "inner")
        async with scopeloop.create_task_group() as tg:
            given = tg.create_task(read(), context=context)
            default = tg.create_task(read())
        return given.return_value, default.return_value

    assert run(main) == ("inner", "outer")


def test_create_task_rejects_what_is_not_a_coroutine(run: Any) -> None:
    async def work() -> None:
        pass

    async def main() -> list[str]:
        errors = []
        async with scopeloop.create_task_group() as tg:
            for wrong in (work, 42):
                with pytest.raises(TypeError) as info:
                    tg.create_task(wrong)  # type: ignore[arg-type]
                errors.extend([str(info.value), *info.value.__notes__])
            assert not tg.cancel_scope.cancel_called  # (bad input, not a failed child)
        return errors

    # AnyIO's sentence, then how to fix it as a note.
    function, function_fix, number, number_fix = run(main)
    assert function == "expected a coroutine, got function"
    assert "call the async function" in function_fix and "start_soon" in function_fix
    assert number == "expected a coroutine, got int"
    assert "such as fn(arg)" in number_fix


def test_create_task_outside_the_group_says_how_to_use_it(run: Any) -> None:
    async def main() -> str:
        async with scopeloop.create_task_group() as tg:
            pass
        coro = asyncio.sleep(0)
        try:
            with pytest.raises(RuntimeError) as info:
                tg.create_task(coro)
        finally:
            coro.close()
        return str(info.value)

    assert "has already exited" in run(main)


def test_handle_cancel_leaves_native_counts_and_the_group_alone(run: Any) -> None:
    async def main() -> tuple[int, int, bool, bool]:
        async def child() -> int:
            with scopeloop.move_on_after(100):  # a scope of its own, under the handle's
                try:
                    await scopeloop.sleep_forever()
                except asyncio.CancelledError:
                    pass
            task = asyncio.current_task()
            assert task is not None
            return task.cancelling()

        async with scopeloop.create_task_group() as tg:
            handle = tg.start_soon(child)
            await scopeloop.wait_all_tasks_blocked()
            handle.cancel()
            await handle.wait()
        host = asyncio.current_task()
        assert host is not None
        return (handle.status.name, handle.return_value, host.cancelling(),
                tg.cancel_scope.cancel_called, tg.cancel_scope.cancelled_caught)

    # The child swallowed the cancellation and returned without another checkpoint:
    # it finished, and no counter moved in it or in the host.
    assert run(main) == ("FINISHED", 0, 0, False, False)


@pytest.mark.skipif(sys.version_info < (3, 12), reason="eager tasks exist from Python 3.12")
@pytest.mark.parametrize("program", [_handles, _as_completed])
def test_handles_with_eager_task_factory(run: Any, program: Any) -> None:
    # An eager task runs its first step inside create_task(), before its handle
    # exists: a task that finishes there must still be reported and cancellable.
    async def eager(lib: Any) -> list[object]:
        asyncio.get_running_loop().set_task_factory(scopeloop.eager_task_factory)
        return await program(lib)

    assert run(eager, scopeloop) == anyio.run(program, anyio, backend="trio")


def test_as_completed_reports_a_task_that_finished_in_its_first_step(run: Any) -> None:
    async def at_once() -> str:
        return "done"

    async def main() -> list[str]:
        if sys.version_info >= (3, 12):
            asyncio.get_running_loop().set_task_factory(scopeloop.eager_task_factory)
        async with scopeloop.as_completed(at_once(), at_once()) as finished:
            return [handle.return_value async for handle in finished]

    assert run(main) == ["done", "done"]
