"""The leak checks of the ``run_app`` harness do catch leaks (so a passing app test means something)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any

import pytest


def test_pending_task_is_reported(run_app: Callable[..., Any]) -> None:
    async def main() -> None:
        asyncio.get_running_loop().create_task(asyncio.sleep(3600), name="forgotten")

    with pytest.raises(AssertionError, match="tasks still pending.*forgotten"):
        run_app(main)


def test_error_in_callback_is_reported(run_app: Callable[..., Any]) -> None:
    async def main() -> None:
        asyncio.get_running_loop().call_soon(lambda: 1 / 0)
        await asyncio.sleep(0)

    with pytest.raises(AssertionError, match="errors reported to the loop.*ZeroDivisionError"):
        run_app(main)


def test_open_socket_is_reported(run_app: Callable[..., Any]) -> None:
    kept: list[socket.socket] = []

    async def main() -> None:
        kept.append(socket.socket())

    try:
        with pytest.raises(AssertionError, match="file descriptors left open.*socket"):
            run_app(main)
    finally:
        kept[0].close()
