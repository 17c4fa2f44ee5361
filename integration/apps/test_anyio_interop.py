"""How AnyIO's cancel scopes and scopeloop's meet on one loop (both run on scopeloop loops)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import anyio

import scopeloop


def test_anyio_scopes_work_on_scopeloop(run_app: Callable[..., Any]) -> None:
    async def main() -> None:
        with anyio.move_on_after(0.01) as scope:
            await anyio.sleep(30)
        assert scope.cancelled_caught
        with anyio.CancelScope() as outer:
            outer.cancel()
            with anyio.CancelScope(shield=True):
                await anyio.sleep(0.001)  # AnyIO's shield holds against AnyIO's scope
            await anyio.sleep(0)  # and outside it the cancellation arrives
            raise AssertionError("not cancelled after the shield")
        assert outer.cancelled_caught
        async with anyio.create_task_group() as tg:
            tg.start_soon(anyio.sleep, 0)
        assert asyncio.current_task().cancelling() == 0

    run_app(main)


def test_anyio_shield_inside_cancelled_scopeloop_scope(run_app: Callable[..., Any]) -> None:
    """With the AnyIO bridge (scopeloop.anyio_compat) AnyIO's shield is a scopeloop
    shield.  As on Trio, the outer scope catches nothing unless a checkpoint after the
    shield raises its cancellation."""
    async def main() -> None:
        finished = False
        with scopeloop.CancelScope() as outer:
            outer.cancel()
            with anyio.CancelScope(shield=True):
                await asyncio.sleep(0.001)
                finished = True
        assert finished and not outer.cancelled_caught  # (Trio: False, nothing raised)
        with scopeloop.CancelScope() as outer:
            outer.cancel()
            with anyio.CancelScope(shield=True):
                await anyio.sleep(0.001)
            await anyio.sleep(0)
            raise AssertionError("not cancelled after the shield")
        assert outer.cancelled_caught
        assert asyncio.current_task().cancelling() == 0

    run_app(main)
