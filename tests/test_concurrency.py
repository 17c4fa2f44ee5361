"""gather() and amap() over task groups (AnyIO 4.16); reference: AnyIO on Trio."""

from __future__ import annotations

import anyio
import pytest

import scopeloop


async def _program(lib) -> list[object]:
    seen: list[object] = []
    order: list[int] = []
    gates = [lib.Event() for _ in range(3)]

    async def value(i: int) -> int:
        await gates[i].wait()
        order.append(i)
        if i > 0:
            gates[i - 1].set()
        return i * 10

    async def opener() -> None:
        await lib.wait_all_tasks_blocked()
        gates[2].set()

    async with lib.create_task_group() as tg:
        tg.start_soon(opener)
        seen.append(await lib.gather(value(0), value(1), value(2)))
    seen.append(order)  # they finished in reverse, results are in argument order
    seen.append(await lib.gather())
    seen.append(await lib.amap(_double, (i for i in range(4))))
    seen.append(await lib.amap(_double, []))

    cancelled: list[str] = []

    async def sleeper() -> None:
        try:
            await lib.sleep_forever()
        except lib.get_cancelled_exc_class():
            cancelled.append("sleeper cancelled")
            raise

    async def fail(exc: BaseException) -> None:
        await lib.wait_all_tasks_blocked()
        raise exc

    try:
        await lib.gather(sleeper(), fail(KeyError("a")))
    except ExceptionGroup as group:
        seen.append(sorted(type(e).__name__ for e in group.exceptions))
    seen.append(list(cancelled))

    async def fail_now(arg: int) -> None:
        raise ValueError(arg)

    try:
        await lib.amap(fail_now, [1, 2])
    except ExceptionGroup as group:  # both failures, none lost
        seen.append(sorted(e.args[0] for e in group.exceptions))

    with lib.move_on_after(0) as scope:
        await lib.gather(sleeper(), sleeper())
    seen.append((scope.cancelled_caught, len(cancelled)))
    return seen


async def _double(i: int) -> int:
    return i * 2


def test_gather_and_amap_match_anyio_on_trio(run):
    expected = [(0, 10, 20), [2, 1, 0], (), [0, 2, 4, 6], [], ["KeyError"],
                ["sleeper cancelled"], [1, 2], (True, 3)]
    assert anyio.run(_program, anyio, backend="trio") == expected
    assert run(_program, scopeloop) == expected


def test_gather_leaves_no_cancel_count(run):
    async def main() -> int:
        with scopeloop.move_on_after(0):
            await scopeloop.gather(scopeloop.sleep_forever(), scopeloop.sleep_forever())
        with pytest.raises(ExceptionGroup):
            await scopeloop.gather(scopeloop.sleep_forever(), _raise())
        import asyncio
        return asyncio.current_task().cancelling()  # type: ignore[union-attr]

    assert run(main) == 0


async def _raise() -> None:
    raise OSError("boom")
