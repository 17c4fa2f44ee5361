"""sniffio says "asyncio" everywhere scopeloop runs code, so AnyIO and httpx pick their asyncio paths."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pytest
import sniffio

import scopeloop


def test_in_tasks_of_every_kind(run: Callable[..., Any]) -> None:
    seen: dict[str, str] = {}

    async def child(label: str) -> None:
        seen[label] = sniffio.current_async_library()

    async def main() -> None:
        seen["main"] = sniffio.current_async_library()
        await asyncio.create_task(child("create_task"))
        async with scopeloop.create_task_group() as tg:
            tg.start_soon(child, "task group")
        async with asyncio.TaskGroup() as atg:
            atg.create_task(child("asyncio.TaskGroup"))
        with scopeloop.CancelScope(shield=True):
            seen["shielded"] = sniffio.current_async_library()

    run(main)
    assert seen == dict.fromkeys(
        ["main", "create_task", "task group", "asyncio.TaskGroup", "shielded"], "asyncio")


def test_in_loop_callbacks(run: Callable[..., Any]) -> None:
    """Callbacks run by the loop outside any task (call_soon, timers, done-callbacks)."""
    seen: dict[str, str] = {}

    def record(label: str) -> None:
        try:
            seen[label] = sniffio.current_async_library()
        except sniffio.AsyncLibraryNotFoundError:
            seen[label] = "not found"

    async def main() -> None:
        loop = asyncio.get_running_loop()
        done = asyncio.Event()
        loop.call_soon(record, "call_soon")
        loop.call_later(0, record, "call_later")
        fut = loop.create_future()
        fut.add_done_callback(lambda _: record("done callback"))
        loop.call_soon(fut.set_result, None)
        loop.call_soon_threadsafe(record, "call_soon_threadsafe")
        loop.call_later(0.001, done.set)
        await done.wait()

    run(main)
    assert seen == dict.fromkeys(
        ["call_soon", "call_later", "done callback", "call_soon_threadsafe"], "asyncio")


def test_not_in_worker_threads_nor_after_the_loop(run: Callable[..., Any]) -> None:
    """The library is only reported where the loop runs code, as on stock asyncio."""
    def in_thread() -> str:
        try:
            return sniffio.current_async_library()
        except sniffio.AsyncLibraryNotFoundError:
            return "not found"

    async def main() -> str:
        return await asyncio.to_thread(in_thread)

    assert run(main) == "not found"
    with pytest.raises(sniffio.AsyncLibraryNotFoundError):
        sniffio.current_async_library()


def test_previous_value_is_restored(backend: str) -> None:
    """The loop names itself while it runs; a value set around it is back afterwards."""
    sniffio.thread_local.name = "host-library"
    try:
        loop = scopeloop.new_event_loop(backend)
        try:
            inside = loop.run_until_complete(_current_library())
        finally:
            loop.close()
        assert inside == "asyncio"
        assert sniffio.thread_local.name == "host-library"
    finally:
        sniffio.thread_local.name = None


async def _current_library() -> str:
    return sniffio.current_async_library()


def test_other_threads_loops_are_independent(backend: str) -> None:
    """Two loops in two threads: each thread's value belongs to its own loop."""
    results: list[str] = []
    ready = threading.Event()

    def other() -> None:
        results.append(asyncio.run(_current_library()))  # stock loop in this thread
        ready.set()

    async def main() -> None:
        thread = threading.Thread(target=other)
        thread.start()
        await asyncio.to_thread(ready.wait)
        thread.join()
        results.append(sniffio.current_async_library())

    scopeloop.run(main, backend=backend)
    assert results == ["asyncio", "asyncio"]
