"""Event loop tokens, from_thread.run/run_sync(token=), BlockingPortal and friends."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

import scopeloop
from scopeloop import from_thread, lowlevel, to_thread
from scopeloop.from_thread import BlockingPortal, BlockingPortalProvider, start_blocking_portal
from scopeloop.token import EventLoopToken, _pending


def _in_thread(func: Any, *args: Any) -> Any:
    """Run ``func(*args)`` in a new plain thread (not a to_thread worker); return/raise."""
    outcome: concurrent.futures.Future[Any] = concurrent.futures.Future()

    def target() -> None:
        try:
            outcome.set_result(func(*args))
        except BaseException as exc:
            outcome.set_exception(exc)

    thread = threading.Thread(target=target)
    thread.start()
    return thread, outcome


# -- tokens -------------------------------------------------------------------------

def test_current_token_names_the_running_loop(run: Any) -> None:
    async def main() -> None:
        token = lowlevel.current_token()
        assert token.loop is asyncio.get_running_loop() is token.native_token
        assert token == lowlevel.current_token() and hash(token) == hash(lowlevel.current_token())

    run(main)
    with pytest.raises(scopeloop.NoEventLoopError, match="current_token"):
        lowlevel.current_token()


def test_plain_threads_call_in_with_a_token(run: Any) -> None:
    async def double(x: int) -> int:
        await asyncio.sleep(0)
        return 2 * x

    async def main() -> list[Any]:
        token = lowlevel.current_token()
        loop_thread = threading.get_ident()

        def work() -> list[Any]:
            return [from_thread.run(double, 21, token=token),
                    from_thread.run_sync(lambda: threading.get_ident() == loop_thread,
                                         token=token)]

        thread, outcome = _in_thread(work)
        while not outcome.done():  # (the loop must keep running while the thread calls in)
            await asyncio.wrap_future(outcome)
        thread.join()
        return outcome.result()  # type: ignore[no-any-return]

    assert run(main) == [42, True]


def test_token_calls_propagate_errors_and_need_another_thread(run: Any) -> None:
    async def fail() -> None:
        raise KeyError("from the loop")

    async def main() -> None:
        token = lowlevel.current_token()
        _, outcome = _in_thread(from_thread.run, fail)  # no token, not a worker
        with pytest.raises(scopeloop.NoEventLoopError):
            await asyncio.wrap_future(outcome)
        _, outcome = _in_thread(lambda: from_thread.run(fail, token=token))
        with pytest.raises(KeyError, match="from the loop"):
            await asyncio.wrap_future(outcome)
        with pytest.raises(RuntimeError, match="own thread"):
            from_thread.run_sync(print, token=token)
        with pytest.raises(TypeError, match="EventLoopToken"):
            from_thread.run_sync(print, token=object())  # type: ignore[arg-type]

    run(main)


def test_worker_with_its_own_loops_token_stays_linked_to_its_caller(run: Any) -> None:
    async def main() -> bool:
        token = lowlevel.current_token()
        with scopeloop.CancelScope() as scope:
            def work() -> None:
                from_thread.run_sync(scope.cancel, token=token)
                from_thread.run(scopeloop.sleep_forever, token=token)  # cancelled with us

            with pytest.raises(asyncio.CancelledError):
                await to_thread.run_sync(work)
            await scopeloop.checkpoint()
        return scope.cancelled_caught

    assert run(main) is True


def test_calls_after_the_loop_finished_raise_run_finished(backend: str) -> None:
    async def main() -> EventLoopToken:
        return lowlevel.current_token()

    token = scopeloop.run(main, backend=backend)
    for call in (lambda: from_thread.run_sync(print, token=token),
                 lambda: from_thread.run(asyncio.sleep, 0, token=token)):
        with pytest.raises(scopeloop.RunFinishedError):
            call()


def test_a_call_waiting_when_the_loop_closes_gets_run_finished(backend: str) -> None:
    loop = scopeloop.new_event_loop(backend)
    token = EventLoopToken(loop)
    thread, outcome = _in_thread(lambda: from_thread.run_sync(print, "never", token=token))
    # The call is queued on a loop that is not running; wait until it is registered
    # (a bounded wait on a condition the other thread sets, not a timing guess).
    waited = threading.Event()
    while not _pending.get(loop):
        waited.wait(0.001)
    loop.close()
    thread.join()
    with pytest.raises(scopeloop.RunFinishedError, match="closed before"):
        outcome.result()


# -- BlockingPortal -----------------------------------------------------------------

async def _add(a: int, b: int) -> int:
    await scopeloop.sleep(0)
    return a + b


def test_portal_calls_sync_and_async_functions(backend: str) -> None:
    with start_blocking_portal(backend) as portal:
        assert portal.call(_add, 1, 2) == 3
        assert portal.call(lambda: threading.current_thread().name).startswith("scopeloop-portal")
        with pytest.raises(ZeroDivisionError):
            portal.call(lambda: 1 / 0)
        with pytest.raises(KeyError):
            portal.call(_raise_key_error)
    with pytest.raises(RuntimeError, match="not running"):
        portal.call(_add, 1, 2)


async def _raise_key_error() -> None:
    await scopeloop.sleep(0)
    raise KeyError


def test_cancelling_the_future_cancels_the_task(backend: str) -> None:
    with start_blocking_portal(backend, name="my portal") as portal:
        started = threading.Event()
        cleanup: list[str] = []

        async def forever() -> None:
            try:
                started.set()
                await scopeloop.sleep_forever()
            finally:
                cleanup.append("cleaned up")

        future = portal.start_task_soon(forever, name="forever")
        started.wait()
        assert future.cancel()
        with pytest.raises(concurrent.futures.CancelledError):
            future.result()
        assert portal.call(lambda: threading.current_thread().name) == "my portal"
        assert portal.call(lambda: cleanup) == ["cleaned up"]


def test_start_task_returns_the_started_value(backend: str) -> None:
    async def service(greeting: str, *, task_status: Any) -> str:
        task_status.started(f"{greeting}, ready")
        await scopeloop.sleep(0)
        return "served"

    async def broken(*, task_status: Any) -> None:
        raise ValueError("before started")

    async def silent(*, task_status: Any) -> None:
        pass

    with start_blocking_portal(backend) as portal:
        future, value = portal.start_task(service, "hello")
        assert value == "hello, ready"
        assert future.result() == "served"
        with pytest.raises(ValueError, match="before started"):
            portal.start_task(broken)
        with pytest.raises(RuntimeError, match="without calling"):
            portal.start_task(silent)


def test_wrap_async_context_manager_runs_enter_and_exit_in_one_task(backend: str) -> None:
    events: list[Any] = []

    @asynccontextmanager
    async def resource() -> AsyncIterator[str]:
        with scopeloop.CancelScope():  # task-bound: entered and exited in one task
            events.append("enter")
            try:
                yield "the resource"
            except KeyError as exc:
                events.append(f"saw {exc!r}")
                raise
            finally:
                events.append("exit")

    with start_blocking_portal(backend) as portal:
        with portal.wrap_async_context_manager(resource()) as value:
            events.append(value)
        with pytest.raises(KeyError):
            with portal.wrap_async_context_manager(resource()):
                raise KeyError("body")
    assert events == ["enter", "the resource", "exit", "enter", "saw KeyError('body')", "exit"]


def test_an_error_in_the_block_cancels_remaining_tasks(backend: str) -> None:
    cleanup: list[str] = []
    started = threading.Event()

    async def forever() -> None:
        try:
            started.set()
            await scopeloop.sleep_forever()
        finally:
            cleanup.append("cancelled")

    with pytest.raises(LookupError):
        with start_blocking_portal(backend) as portal:
            future = portal.start_task_soon(forever)
            started.wait()
            raise LookupError
    assert cleanup == ["cancelled"]
    with pytest.raises(concurrent.futures.CancelledError):
        future.result()


def test_portal_in_a_running_loop_serves_worker_threads(run: Any) -> None:
    async def main() -> list[Any]:
        async with BlockingPortal() as portal:
            with pytest.raises(RuntimeError, match="own thread"):
                portal.call(_add, 1, 1)
            result = await to_thread.run_sync(lambda: [portal.call(_add, 2, 3),
                                                        portal.call(_add, 4, 5)])
            # the portal's tasks run in this loop
            assert portal._token.loop is asyncio.get_running_loop()
        return result

    assert run(main) == [5, 9]


def test_call_async_from_another_loop(backend: str) -> None:
    cleanup: list[str] = []

    async def slow_cleanup() -> None:
        try:
            await scopeloop.sleep_forever()
        finally:
            with scopeloop.CancelScope(shield=True):
                await scopeloop.sleep(0)
            cleanup.append("target cancelled")

    with start_blocking_portal(backend) as portal:
        async def main() -> list[Any]:
            results: list[Any] = [await portal.call_async(_add, 1, 2),
                                  await portal.call_async(lambda: "sync")]
            with scopeloop.move_on_after(0.01) as scope:
                await portal.call_async(slow_cleanup)
            results.append((scope.cancelled_caught, list(cleanup)))
            with pytest.raises(KeyError):
                await portal.call_async(_raise_key_error)
            return results

        assert scopeloop.run(main, backend=backend) == [3, "sync", (True, ["target cancelled"])]


def test_provider_shares_one_portal_between_threads(backend: str) -> None:
    provider = BlockingPortalProvider(backend)
    entered = threading.Barrier(3)
    seen: list[BlockingPortal] = []

    def user() -> None:
        with provider as portal:
            seen.append(portal)
            entered.wait()  # all three hold it at once
            portal.call(_add, 1, 1)

    threads = [threading.Thread(target=user) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(seen) == 3 and seen[0] is seen[1] is seen[2]
    with pytest.raises(RuntimeError, match="not running"):
        seen[0].call(_add, 1, 1)  # the last one out stopped it
    with provider as again:
        assert again is not seen[0]
    with pytest.raises(RuntimeError, match="exited more often"):
        provider.__exit__(None, None, None)


# -- the same thread-side program on AnyIO's Trio backend, as the reference -----------

def _portal_program(lib: Any, portal: Any) -> list[Any]:
    seen: list[Any] = []

    async def add(a: int, b: int) -> int:
        await lib.sleep(0)
        return a + b

    async def fail(**_: Any) -> None:
        await lib.sleep(0)
        raise KeyError("k")

    async def service(*, task_status: Any) -> str:
        task_status.started("up")
        await lib.sleep(0)
        return "done"

    started = threading.Event()

    async def forever() -> None:
        started.set()
        await lib.sleep_forever()

    seen.append(portal.call(add, 1, 2))
    seen.append(portal.call(lambda: "sync"))
    try:
        portal.call(fail)
    except KeyError:
        seen.append("KeyError")
    future, value = portal.start_task(service)
    seen.append((value, future.result()))
    future = portal.start_task_soon(forever)
    started.wait()
    future.cancel()
    try:
        future.result()
    except concurrent.futures.CancelledError:
        seen.append("cancelled")

    @asynccontextmanager
    async def cm() -> AsyncIterator[str]:
        with lib.CancelScope():
            yield "in"
        seen.append("exited")

    with portal.wrap_async_context_manager(cm()) as got:
        seen.append(got)
    try:
        portal.start_task(fail)
    except KeyError:
        seen.append("start_task KeyError")
    return seen


def test_portal_matches_anyio_on_trio(backend: str) -> None:
    import anyio
    import anyio.from_thread

    expected = [3, "sync", "KeyError", ("up", "done"), "cancelled", "in", "exited",
                "start_task KeyError"]
    with anyio.from_thread.start_blocking_portal("trio") as portal:
        assert _portal_program(anyio, portal) == expected
    with start_blocking_portal(backend) as portal:
        assert _portal_program(scopeloop, portal) == expected


async def _call_async_program(lib: Any, portal: Any) -> list[Any]:
    seen: list[Any] = []
    # Cross-thread handshakes: threading primitives, since the target runs elsewhere.
    target_started = threading.Event()
    release = threading.Event()

    async def add(a: int, b: int) -> int:
        await lib.sleep(0)
        return a + b

    async def guarded() -> None:
        target_started.set()
        try:
            await lib.sleep_forever()
        finally:
            seen.append("target cancelled")

    async def stubborn() -> str:
        target_started.set()
        with lib.CancelScope(shield=True):
            await lib.to_thread.run_sync(release.wait)
        return "finished anyway"

    seen.append(await portal.call_async(add, 2, 3))
    with lib.CancelScope() as scope:
        async with lib.create_task_group() as tg:
            async def cancel_when_started() -> None:
                await lib.to_thread.run_sync(target_started.wait)
                scope.cancel()

            tg.start_soon(cancel_when_started)
            await portal.call_async(guarded)
    seen.append(scope.cancelled_caught)
    target_started.clear()
    with lib.CancelScope() as scope:
        async with lib.create_task_group() as tg:
            async def cancel_when_started2() -> None:
                await lib.to_thread.run_sync(target_started.wait)
                scope.cancel()

            tg.start_soon(cancel_when_started2)
            await portal.call_async(stubborn, abandon_on_cancel=True)
    seen.append(("abandoned", scope.cancelled_caught))
    release.set()
    try:
        await portal.call_async(lambda: 1 / 0)
    except ZeroDivisionError:
        seen.append("ZeroDivisionError")
    return seen


def test_call_async_matches_anyio_on_trio(backend: str) -> None:
    import anyio
    import anyio.from_thread
    import anyio.to_thread

    expected = [5, "target cancelled", True, ("abandoned", True), "ZeroDivisionError"]
    with anyio.from_thread.start_blocking_portal("trio") as portal:
        assert anyio.run(_call_async_program, anyio, portal, backend="trio") == expected
    with start_blocking_portal(backend) as portal:
        assert scopeloop.run(_call_async_program, scopeloop, portal, backend=backend) == expected
