"""An async generator that yields inside a cancel scope or task group: the errors
that follow name the generator and say what to do (issue 19)."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import warnings
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

import scopeloop
from scopeloop import CancelScope, create_task_group

ADVICE = ("contextlib.aclosing", "Don't yield inside a cancel scope or task group",
          "--scopeloop")


def assert_names_generator(exc: BaseException, name: str, line: int) -> None:
    message = str(exc)
    assert f"async generator {name}() ({__file__}:{line})" in message, message
    for words in ADVICE:
        assert words in message, message


async def ticker() -> AsyncIterator[int]:
    with scopeloop.move_on_after(30):
        for i in range(10):
            yield i  # TICKER_YIELD


async def serving() -> AsyncIterator[int]:
    async with create_task_group() as tg:
        tg.start_soon(scopeloop.sleep_forever)
        yield 1
        tg.cancel_scope.cancel()


def line_of(marker: str) -> int:
    with open(__file__) as f:
        return next(n for n, text in enumerate(f, 1) if text.rstrip().endswith(marker))


TICKER_WITH = ticker.__code__.co_firstlineno + 1
SERVING_WITH = serving.__code__.co_firstlineno + 1


async def close_in_another_task(gen: AsyncIterator[int]) -> BaseException:
    errors: list[BaseException] = []

    async def closer() -> None:
        try:
            await gen.aclose()  # type: ignore[attr-defined]
        except RuntimeError as exc:
            errors.append(exc)

    await asyncio.get_running_loop().create_task(closer())
    [error] = errors
    return error


def test_scope_exited_by_another_task(run):
    async def main() -> None:
        with pytest.raises(RuntimeError, match="reverse order") as later:
            with CancelScope():
                gen = ticker()
                assert await gen.__anext__() == 0
                error = await close_in_another_task(gen)
                assert "must be exited in the task that entered it" in str(error)
                assert_names_generator(error, "ticker", TICKER_WITH)
        # This task's own scope then finds the generator's scope left open in it.
        assert "inner scope was left open in the async generator ticker()" in str(later.value)
        assert_names_generator(later.value, "ticker", TICKER_WITH)
        with scopeloop.move_on_after(0.001) as scope:  # the loop is still usable
            await asyncio.sleep(30)
        assert scope.cancelled_caught

    run(main)


def test_task_group_exited_by_another_task(run):
    async def main() -> None:
        with pytest.raises(RuntimeError, match="reverse order") as later:
            with CancelScope():
                gen = serving()
                await gen.__anext__()
                error = await close_in_another_task(gen)
                assert "a TaskGroup must be exited in the task that entered it" in str(error)
                assert_names_generator(error, "serving", SERVING_WITH)
        assert_names_generator(later.value, "serving", SERVING_WITH)
        # (The group's child is still running, in a scope nobody will exit.)
        for task in asyncio.all_tasks():
            if task is not asyncio.current_task():
                task.cancel()

    run(main)


def test_outer_scope_exited_while_a_suspended_generator_holds_one_open(run):
    async def main() -> None:
        gen = ticker()
        with pytest.raises(RuntimeError, match="reverse order") as info:
            with CancelScope():
                async for _ in gen:
                    break  # the generator stays suspended at its yield, scope open
        assert "inner scope is still open in the async generator ticker()" in str(info.value)
        assert_names_generator(info.value, "ticker", line_of("# TICKER_YIELD"))
        del gen

    run(main)


def test_scope_resumed_in_another_task_after_its_exit(run):
    # The generator is resumed by a second task after its first task unwound the
    # scope (out-of-order error): exiting it again is "not active", said plainly.
    async def main() -> None:
        gen = ticker()
        with pytest.raises(RuntimeError, match="reverse order"):
            with CancelScope():
                await gen.__anext__()
        error = await close_in_another_task(gen)
        assert "this CancelScope is not active" in str(error)
        assert_names_generator(error, "ticker", TICKER_WITH)

    run(main)


def test_misuse_outside_generators_has_no_generator_advice(run):
    async def main() -> None:
        outer, inner = CancelScope(), CancelScope()
        outer.__enter__()
        inner.__enter__()
        with pytest.raises(RuntimeError, match="reverse order") as info:
            outer.__exit__(None, None, None)
        assert "async generator" not in str(info.value)

    run(main)


# -- debug mode: a warning at the yield itself (Python 3.12+: sys.monitoring) ------

needs_monitoring = pytest.mark.skipif(
    sys.version_info < (3, 12), reason="the yield is observed through sys.monitoring (3.12+)")


def yield_warnings(backend: str, main: Callable[[], Any]) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scopeloop.run(main, backend=backend, debug=True)
    return [str(w.message) for w in caught
            if issubclass(w.category, RuntimeWarning) and "yielded inside" in str(w.message)]


@needs_monitoring
def test_debug_mode_warns_at_a_yield_inside_a_scope(backend: str) -> None:
    async def main() -> None:
        async with contextlib.aclosing(ticker()) as gen:
            async for _ in gen:
                pass
        gen2 = serving()
        await gen2.__anext__()
        with pytest.raises(StopAsyncIteration):
            await gen2.__anext__()  # cancels its group and exits it, in this task

    messages = yield_warnings(backend, main)
    assert len(messages) == 2, messages
    assert f"async generator ticker() yielded inside a cancel scope or task group it " \
           f"entered ({__file__}:{line_of('# TICKER_YIELD')})" in messages[0]
    assert "async generator serving() yielded inside" in messages[1]
    assert "contextlib.aclosing" in messages[0]


@needs_monitoring
def test_debug_mode_is_quiet_for_yields_outside_scopes(backend: str) -> None:
    async def outside() -> AsyncIterator[int]:
        for i in range(3):
            with scopeloop.move_on_after(30):
                await asyncio.sleep(0)  # an await inside the scope is fine
            yield i

    @contextlib.asynccontextmanager
    async def context() -> AsyncIterator[None]:
        async with create_task_group():
            yield  # what asynccontextmanager is for

    async def main() -> None:
        with CancelScope():  # the consumer's own scope is not the generator's
            async for _ in outside():
                pass
        async with context():
            await asyncio.sleep(0)

    assert yield_warnings(backend, main) == []


def test_no_warning_without_debug_mode(backend: str) -> None:
    async def main() -> None:
        async with contextlib.aclosing(ticker()) as gen:
            async for _ in gen:
                pass

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scopeloop.run(main, backend=backend)
