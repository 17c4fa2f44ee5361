"""lowlevel.RunVar: one value per event loop, AnyIO's API (reference: AnyIO on Trio)."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest

import scopeloop
from scopeloop.lowlevel import RunVar, RunvarToken

plain: RunVar[int] = RunVar("plain")
with_default: RunVar[str] = RunVar("with_default", default="dflt")


async def _program(lib) -> list[object]:
    seen: list[object] = []
    var = lib.lowlevel.RunVar("v")
    try:
        var.get()
    except LookupError:
        seen.append("LookupError")
    seen.append(var.get(7))
    seen.append(lib.lowlevel.RunVar("d", default=1).get())
    token = var.set(1)
    seen.append(var.get())
    with var.set(2):
        seen.append(var.get())

        async def child() -> None:
            seen.append(("child sees", var.get()))
            var.set(3)  # shared by the whole run, unlike a ContextVar

        async with lib.create_task_group() as tg:
            tg.start_soon(child)
    seen.append(var.get())  # the context manager restored 1
    var.reset(token)
    seen.append(var.get(None))
    for bad in (token, lib.lowlevel.RunVar("other").set(0)):
        try:
            var.reset(bad)
        except ValueError:
            seen.append("ValueError")
    return seen


def test_runvar_matches_anyio_on_trio(run):
    expected = ["LookupError", 7, 1, 1, 2, ("child sees", 2), 1, None,
                "ValueError", "ValueError"]
    assert anyio.run(_program, anyio, backend="trio") == expected
    assert run(_program, scopeloop) == expected


def test_each_loop_has_its_own_value(run):
    async def first() -> int:
        plain.set(1)
        with_default.set("first")
        return plain.get()

    async def second() -> tuple[int, str]:
        return plain.get(0), with_default.get()

    assert run(first) == 1
    assert run(second) == (0, "dflt")


def test_token_is_a_context_manager_and_single_use(run):
    async def main() -> None:
        with plain.set(5) as token:
            assert isinstance(token, RunvarToken)
            assert plain.get() == 5
        assert plain.get(None) is None
        with pytest.raises(ValueError, match="already been used"):
            plain.reset(token)

    run(main)


def test_needs_a_running_loop():
    with pytest.raises(scopeloop.NoEventLoopError, match="RunVar.get"):
        plain.get()
    assert repr(plain) == "<RunVar name='plain'>"
