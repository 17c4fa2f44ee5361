"""Checkpoints, time and task introspection."""

from __future__ import annotations

import asyncio

import scopeloop


def test_wait_all_tasks_blocked_waits_for_nested_groups_to_settle(run):
    """A finished child wakes its group through a queued callback: that must run first."""
    async def main() -> list[str]:
        order: list[str] = []

        async def child() -> None:
            order.append("child")

        async def host(depth: int) -> None:
            async with scopeloop.create_task_group() as tg:
                if depth:
                    tg.start_soon(host, depth - 1)
                else:
                    tg.start_soon(child)
            order.append(f"host {depth}")

        async with scopeloop.create_task_group() as tg:
            tg.start_soon(host, 3)
            await scopeloop.wait_all_tasks_blocked()
            order.append("all blocked")
        return order

    assert run(main) == ["child", "host 0", "host 1", "host 2", "host 3", "all blocked"]


def test_wait_all_tasks_blocked_returns_while_others_wait(run):
    async def main() -> None:
        event = asyncio.Event()
        waiter = asyncio.create_task(event.wait())
        await scopeloop.wait_all_tasks_blocked()
        assert not waiter.done()
        event.set()
        await waiter

    run(main)


def test_get_current_task_reports_parent_and_name(run):
    async def main() -> None:
        me = scopeloop.get_current_task()
        seen: list[scopeloop.TaskInfo] = []

        async def child() -> None:
            seen.append(scopeloop.get_current_task())

        async with scopeloop.create_task_group() as tg:
            tg.start_soon(child, name="the child")
        (info,) = seen
        assert info.name == "the child"
        assert info.parent_id == me.id
        assert me.parent_id is None
        assert info.id != me.id

    run(main)


def test_current_time_is_the_loop_clock(run):
    async def main() -> None:
        loop = asyncio.get_running_loop()
        before = loop.time()
        now = scopeloop.current_time()
        assert before <= now <= loop.time()
        assert scopeloop.get_cancelled_exc_class() is asyncio.CancelledError

    run(main)


def test_sleep_until_and_sleep_forever(run):
    async def main() -> None:
        loop = asyncio.get_running_loop()
        target = loop.time() + 0.01
        await scopeloop.sleep_until(target)
        assert loop.time() >= target
        with scopeloop.move_on_after(0.01) as scope:
            await scopeloop.sleep_forever()
        assert scope.cancelled_caught

    run(main)


# -- AnyIO 4.16 parity: checkpoints, running tasks, timeouts with a reason ------------
# Each program takes the library as `lib` and runs on scopeloop and, as the reference,
# on AnyIO with Trio's backend.

import anyio  # noqa: E402
import anyio.lowlevel  # noqa: E402
import pytest  # noqa: E402


def _on_trio(main, *args):
    return anyio.run(main, anyio, *args, backend="trio")


async def _checkpoint_if_cancelled_program(lib) -> list[str]:
    seen: list[str] = []
    ran: list[str] = []

    async def other() -> None:
        ran.append("other")

    async with lib.create_task_group() as tg:
        tg.start_soon(other)
        await lib.lowlevel.checkpoint_if_cancelled()  # not cancelled: no yield
        seen.append(f"other ran before: {bool(ran)}")
        await lib.wait_all_tasks_blocked()  # (Trio randomises order within a batch)
        seen.append(f"other ran after checkpoint: {bool(ran)}")
    with lib.CancelScope() as scope:
        scope.cancel()
        with lib.CancelScope(shield=True):
            await lib.lowlevel.checkpoint_if_cancelled()
            seen.append("shielded: no raise")
        try:
            await lib.lowlevel.checkpoint_if_cancelled()
        except lib.get_cancelled_exc_class():
            seen.append("cancelled: raised")
            raise
    seen.append(f"caught={scope.cancelled_caught}")
    return seen


def test_checkpoint_if_cancelled_matches_trio(run):
    expected = ["other ran before: False", "other ran after checkpoint: True",
                "shielded: no raise", "cancelled: raised", "caught=True"]
    assert _on_trio(_checkpoint_if_cancelled_program) == expected
    assert run(_checkpoint_if_cancelled_program, scopeloop) == expected


async def _cancel_shielded_checkpoint_program(lib) -> list[str]:
    seen: list[str] = []
    with lib.CancelScope() as scope:
        scope.cancel()
        await lib.lowlevel.cancel_shielded_checkpoint()
        seen.append("no raise")
        try:
            await lib.lowlevel.checkpoint()
        except lib.get_cancelled_exc_class():
            seen.append("next checkpoint raised")
            raise
    seen.append(f"caught={scope.cancelled_caught}")
    return seen


def test_cancel_shielded_checkpoint_matches_trio(run):
    expected = ["no raise", "next checkpoint raised", "caught=True"]
    assert _on_trio(_cancel_shielded_checkpoint_program) == expected
    assert run(_cancel_shielded_checkpoint_program, scopeloop) == expected


def test_cancel_shielded_checkpoint_lets_others_run(run):
    # (Not compared with Trio: Trio randomises the order within a batch.)
    async def main() -> list[str]:
        seen: list[str] = []

        async def other() -> None:
            seen.append("other ran")

        async with scopeloop.create_task_group() as tg:
            tg.start_soon(other)
            tg.cancel_scope.cancel()
            await scopeloop.lowlevel.cancel_shielded_checkpoint()
            seen.append("after the checkpoint")
        return seen

    assert run(main) == ["other ran", "after the checkpoint"]


def test_cancel_shielded_checkpoint_leaves_no_count(run):
    async def main() -> int:
        with scopeloop.CancelScope() as scope:
            scope.cancel()
            for _ in range(3):
                await scopeloop.lowlevel.cancel_shielded_checkpoint()
        return asyncio.current_task().cancelling()  # type: ignore[union-attr]

    assert run(main) == 0


def test_get_running_tasks_lists_live_tasks_only(run):
    async def main() -> None:
        me = scopeloop.get_current_task()
        done = asyncio.create_task(asyncio.sleep(0), name="finished")
        await done
        event = scopeloop.Event()
        async with scopeloop.create_task_group() as tg:
            tg.start_soon(event.wait, name="waiter")
            await scopeloop.wait_all_tasks_blocked()
            tasks = scopeloop.get_running_tasks()
            names = {info.name for info in tasks}
            assert me in tasks
            assert "waiter" in names and "finished" not in names
            (waiter,) = [info for info in tasks if info.name == "waiter"]
            assert waiter.parent_id == me.id
            event.set()

    run(main)


def test_get_running_tasks_needs_a_loop():
    with pytest.raises(scopeloop.NoEventLoopError, match="get_running_tasks"):
        scopeloop.get_running_tasks()


async def _timeout_reason_program(lib) -> list[str]:
    seen: list[str] = []
    for make in (lambda: lib.fail_after(0, reason="took too long"),
                 lambda: lib.fail_at(lib.current_time(), reason="past the deadline"),
                 lambda: lib.fail_after(0)):
        try:
            with make():
                await lib.sleep(1)
        except TimeoutError as exc:
            seen.append(str(exc) if exc.args and "deadline of" not in str(exc) else "<ours>")
    with lib.fail_at(None) as scope:
        await lib.sleep(0)
    with lib.move_on_at(None) as scope2:
        await lib.sleep(0)
    seen.append(f"{scope.deadline} {scope2.deadline}")
    return seen


def test_fail_after_reason_matches_trio(run):
    # AnyIO raises a bare TimeoutError without a reason; scopeloop keeps its own
    # message then ("deadline of ... exceeded"), folded to "<ours>" here.
    got = run(_timeout_reason_program, scopeloop)
    ref = _on_trio(_timeout_reason_program)
    assert got[:2] == ref[:2] == ["took too long", "past the deadline"]
    assert got == ref  # (both "<ours>" for the reason-less one)
    assert got[3] == "inf inf"


def test_fail_after_reason_must_be_text():
    with pytest.raises(TypeError, match="reason"):
        scopeloop.fail_after(1, reason=3)  # type: ignore[arg-type]


def test_pending_cancellation_of_a_blocked_task(run):
    """A native cancel() of a task blocked on a future is pending until it wakes (the
    future is cancelled, _must_cancel is not set); a scope's cancellation is too; a
    shield hides the scope's but not the native one."""
    async def main():
        never = asyncio.get_running_loop().create_future()
        seen = {}

        async def blocked(shielded):
            with scopeloop.CancelScope(shield=shielded):
                await asyncio.shield(never)

        async with scopeloop.create_task_group() as tg:
            plain = tg.create_task(blocked(False))
            shielded = tg.create_task(blocked(True))
            await scopeloop.wait_all_tasks_blocked()
            info = {name: scopeloop.TaskInfo(handle._task)
                    for name, handle in (("plain", plain), ("shielded", shielded))}
            seen["before"] = [i.has_pending_cancellation() for i in info.values()]
            tg.cancel_scope.cancel()
            seen["scope"] = [i.has_pending_cancellation() for i in info.values()]
            shielded._task.cancel()
            seen["native"] = info["shielded"].has_pending_cancellation()
        return seen

    assert run(main) == {"before": [False, False], "scope": [True, False], "native": True}
