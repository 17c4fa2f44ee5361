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
