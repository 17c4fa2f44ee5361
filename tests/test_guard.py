"""ResourceGuard and BusyResourceError (AnyIO's API)."""

from __future__ import annotations

import anyio
import pytest

import scopeloop


async def _program(lib) -> list[str]:
    seen: list[str] = []
    guard = lib.ResourceGuard("reading from")
    event = lib.Event()

    async def holder() -> None:
        with guard:
            await event.wait()

    async with lib.create_task_group() as tg:
        tg.start_soon(holder)
        await lib.wait_all_tasks_blocked()
        try:
            with guard:
                seen.append("entered twice")
        except lib.BusyResourceError as exc:
            seen.append(str(exc))
        event.set()
    with guard:
        seen.append("free again")
    return seen


def test_resource_guard_matches_anyio(run):
    expected = ["Another task is already reading from this resource", "free again"]
    assert anyio.run(_program, anyio, backend="trio") == expected
    assert run(_program, scopeloop) == expected


def test_guard_is_released_by_an_exception():
    guard = scopeloop.ResourceGuard()
    with pytest.raises(KeyError):
        with guard:
            raise KeyError
    with guard:
        pass
    assert guard.action == "using"
    assert str(scopeloop.BusyResourceError("using")) == str(anyio.BusyResourceError("using"))
