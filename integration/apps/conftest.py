"""Harness for real applications on scopeloop: a loop per test, leak checks at shutdown.

Each test hands an async ``main`` to the ``run_app`` fixture, which runs it with the
stdlib's own entry point (``asyncio.Runner(loop_factory=...)``) on a fresh scopeloop
loop of the chosen backend and then checks that the application left nothing behind:

* no task is still pending when ``main`` returns (the application shut itself down);
* nothing reached the loop's exception handler (no "Task was destroyed but it is
  pending", no unclosed sessions, no errors in callbacks);
* no file descriptor (socket) is left open once the loop is closed.
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

import scopeloop

_BACKENDS = ([os.environ["SCOPELOOP_BACKEND"]] if os.environ.get("SCOPELOOP_BACKEND")
             else [b for b in scopeloop.BACKENDS if b != "uvloop" or scopeloop.default_backend() == "uvloop"])


@pytest.fixture(params=_BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The scopeloop backend this test runs on."""
    return request.param  # type: ignore[no-any-return]


def open_fds() -> set[int] | None:
    """The process's open file descriptors (None where /proc is not available)."""
    if not sys.platform.startswith("linux"):
        return None
    return {int(name) for name in os.listdir("/proc/self/fd")}


def assert_on_scopeloop(backend: str) -> None:
    """Fail unless the caller runs in a scopeloop Task on a loop of ``backend``."""
    loop = asyncio.get_running_loop()
    assert getattr(loop, "scopeloop_backend", None) == backend, loop
    assert isinstance(asyncio.current_task(), scopeloop.Task), asyncio.current_task()


@pytest.fixture
def run_app(backend: str) -> Callable[..., Any]:
    """Run ``main(*args)`` on a fresh scopeloop loop and check it leaked nothing."""

    def run(main: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        # The first loop of a backend in a process may open process-wide resources
        # for good (libuv's signal pipe), which are not the application's leaks.
        scopeloop.new_event_loop(backend).close()
        gc.collect()
        fds_before = open_fds()
        loop_errors: list[dict[str, Any]] = []

        def loop_factory() -> asyncio.AbstractEventLoop:
            loop = scopeloop.new_event_loop(backend)
            loop.set_exception_handler(lambda _, context: loop_errors.append(context))
            return loop

        async def checked_main() -> Any:
            assert_on_scopeloop(backend)
            result = await main(*args)
            leftover = asyncio.all_tasks() - {asyncio.current_task()}
            assert not leftover, f"tasks still pending when the application returned: {leftover}"
            return result

        with asyncio.Runner(loop_factory=loop_factory) as runner:
            result = runner.run(checked_main())
        gc.collect()  # a leaked transport or session reports itself when collected
        assert not loop_errors, f"errors reported to the loop: {loop_errors}"
        if fds_before is not None:
            leaked = open_fds() - fds_before  # type: ignore[operator]
            assert not leaked, f"file descriptors left open: {_describe(leaked)}"
        return result

    return run


def _describe(fds: set[int]) -> list[str]:
    described = []
    for fd in sorted(fds):
        try:
            described.append(f"{fd} -> {os.readlink(f'/proc/self/fd/{fd}')}")
        except OSError:
            described.append(str(fd))
    return described
