"""The AnyIO bridge (scopeloop.anyio_compat): AnyIO code in scopeloop Tasks sees
scopeloop's scopes, and behaves as the same program does on AnyIO's Trio backend.

Where a case compares with Trio, the same program runs twice: with scopeloop's scopes
on a scopeloop loop, and with AnyIO's scopes on ``anyio.run(..., backend="trio")``;
what each observed must be equal.
"""

from __future__ import annotations

import asyncio
import math
import socket
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread
import pytest
import sniffio

import scopeloop
from scopeloop import anyio_compat

ROOT = Path(__file__).resolve().parent.parent
Observed = dict[str, Any]


def on_both(run: Callable[..., Any], program: Callable[..., Any]) -> Observed:
    """Run ``program(obs, Scope)`` on scopeloop (Scope: scopeloop.CancelScope) and on
    AnyIO's Trio backend (Scope: anyio.CancelScope); assert they observed the same."""
    ours: Observed = {}
    trios: Observed = {}
    run(program, ours, scopeloop.CancelScope)
    anyio.run(program, trios, anyio.CancelScope, backend="trio")
    assert ours == trios
    return ours


# -- 1-5: scopes, shields, deadlines, checkpoints, task information -----------------

def test_anyio_shield_holds_inside_a_cancelled_scopeloop_scope(run: Callable[..., Any]) -> None:
    async def program(obs: Observed, Scope: Any) -> None:
        with Scope() as outer:
            outer.cancel()
            with anyio.CancelScope(shield=True) as shield:
                await anyio.sleep(0.01)  # (1) completes
                obs["slept"] = True
                lock = anyio.Lock(fast_acquire=True)
                async with lock:  # (2) does not raise
                    obs["locked"] = True
                semaphore = anyio.Semaphore(1, fast_acquire=True)
                async with semaphore:
                    obs["semaphore"] = True
                obs["pending in shield"] = anyio.get_current_task().has_pending_cancellation()
            obs["shield caught"] = shield.cancelled_caught
            obs["pending outside"] = anyio.get_current_task().has_pending_cancellation()  # (5)
            await anyio.lowlevel.checkpoint()
            obs["after checkpoint"] = True
        obs["outer caught"] = outer.cancelled_caught

    assert on_both(run, program) == {
        "slept": True, "locked": True, "semaphore": True, "pending in shield": False,
        "shield caught": False, "pending outside": True, "outer caught": True}


def test_effective_deadline_of_a_scopeloop_scope(run: Callable[..., Any]) -> None:
    async def main() -> None:
        assert anyio.current_effective_deadline() == math.inf
        with scopeloop.move_on_after(5) as scope:
            assert anyio.current_effective_deadline() == scope.deadline < math.inf
            with anyio.move_on_after(1) as inner:
                assert anyio.current_effective_deadline() == inner.deadline
            with anyio.CancelScope(shield=True):
                assert anyio.current_effective_deadline() == math.inf
            scope.cancel()
            assert anyio.current_effective_deadline() == -math.inf

    run(main)


def test_checkpoints_in_a_cancelled_scopeloop_scope(run: Callable[..., Any]) -> None:
    async def program(obs: Observed, Scope: Any) -> None:
        with Scope() as scope:
            scope.cancel()
            await anyio.lowlevel.cancel_shielded_checkpoint()
            obs["shielded checkpoint passed"] = True
            try:
                await anyio.lowlevel.checkpoint_if_cancelled()
            except anyio.get_cancelled_exc_class():
                obs["checkpoint_if_cancelled raised"] = True
                raise
        obs["caught"] = scope.cancelled_caught
        with Scope():
            await anyio.lowlevel.checkpoint_if_cancelled()  # not cancelled: passes
            obs["uncancelled passes"] = True

    assert on_both(run, program) == {
        "shielded checkpoint passed": True, "checkpoint_if_cancelled raised": True,
        "caught": True, "uncancelled passes": True}


def test_task_information(run: Callable[..., Any]) -> None:
    async def main() -> None:
        info = anyio.get_current_task()
        assert isinstance(info, anyio.TaskInfo) and info.id == id(asyncio.current_task())
        assert not info.has_pending_cancellation()
        seen: list[anyio.TaskInfo] = []

        async def child() -> None:
            seen.append(anyio.get_current_task())
            await anyio.sleep_forever()

        async with anyio.create_task_group() as tg:
            tg.start_soon(child)
            await anyio.wait_all_tasks_blocked()
            assert seen[0].parent_id == info.id
            assert set(seen) <= set(anyio.get_running_tasks())
            assert not seen[0].has_pending_cancellation()
            tg.cancel_scope.cancel()
            assert seen[0].has_pending_cancellation()

    run(main)


# -- 6: worker threads ---------------------------------------------------------------

def _worker(started: threading.Event, release: threading.Event, finished: threading.Event,
            poll: bool) -> str:
    started.set()
    try:
        if poll:
            # Waits for the cancellation itself: check_cancelled() is what ends it.
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    anyio.from_thread.check_cancelled()
                except BaseException:  # (asyncio's CancelledError, or trio.Cancelled)
                    return "saw cancel"
                release.wait(0.002)
            return "no cancel seen"
        release.wait(10)
        return "released"
    finally:
        finished.set()


def test_worker_is_waited_for_unless_abandoned(run: Callable[..., Any]) -> None:
    async def program(obs: Observed, Scope: Any) -> None:
        started, release, finished = threading.Event(), threading.Event(), threading.Event()
        mover = scopeloop.move_on_after if Scope is scopeloop.CancelScope else anyio.move_on_after
        with mover(0.05) as scope:
            obs["result"] = await anyio.to_thread.run_sync(
                _worker, started, release, finished, True)
            obs["finished when run_sync returned"] = finished.is_set()
            await anyio.lowlevel.checkpoint()
            obs["not reached"] = True
        obs["caught"] = scope.cancelled_caught

        started, release, finished = threading.Event(), threading.Event(), threading.Event()
        with mover(0.05) as scope:
            await anyio.to_thread.run_sync(_worker, started, release, finished, False,
                                           abandon_on_cancel=True)
            obs["abandoned: not reached"] = True
        obs["abandoned: caught"] = scope.cancelled_caught
        obs["abandoned: still running"] = started.is_set() and not finished.is_set()
        release.set()
        obs["abandoned: finished later"] = await anyio.to_thread.run_sync(finished.wait, 10)

    assert on_both(run, program) == {
        "result": "saw cancel", "finished when run_sync returned": True, "caught": True,
        "abandoned: caught": True, "abandoned: still running": True,
        "abandoned: finished later": True}


def test_worker_threads_honour_the_limiter_and_call_back(run: Callable[..., Any]) -> None:
    async def main() -> None:
        limiter = anyio.CapacityLimiter(1)
        inside: list[int] = []
        lock = threading.Lock()
        peak = [0]

        def work(i: int) -> int:
            with lock:
                inside.append(i)
                peak[0] = max(peak[0], len(inside))
            assert sniffio.thread_local.name is None
            value = anyio.from_thread.run_sync(lambda: i * 2)
            value += anyio.from_thread.run(asyncio.sleep, 0, 1)
            with lock:
                inside.remove(i)
            return value

        results: dict[int, int] = {}

        async def call(i: int) -> None:
            results[i] = await anyio.to_thread.run_sync(work, i, limiter=limiter)

        async with anyio.create_task_group() as tg:
            for i in range(4):
                tg.start_soon(call, i)
        assert results == {i: 2 * i + 1 for i in range(4)}
        assert peak[0] == 1

    run(main)


def test_from_thread_run_is_cancelled_with_its_caller(run: Callable[..., Any]) -> None:
    async def main() -> None:
        entered = anyio.Event()

        async def forever() -> None:
            entered.set()
            await anyio.sleep_forever()

        def work() -> str:
            try:
                anyio.from_thread.run(forever)
            except asyncio.CancelledError:
                anyio.from_thread.check_cancelled()  # raises: the caller was cancelled
            return "returned"

        async def cancel_when_entered() -> None:
            await entered.wait()
            scope.cancel()

        with scopeloop.CancelScope() as scope:
            async with anyio.create_task_group() as tg:
                tg.start_soon(cancel_when_entered)
                await anyio.to_thread.run_sync(work)
            raise AssertionError("the worker's cancellation did not propagate")
        assert scope.cancelled_caught

    run(main)


# -- 7: sockets -------------------------------------------------------------------

def test_socket_send_in_a_cancelled_scopeloop_scope(run: Callable[..., Any]) -> None:
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    async def main() -> None:
        stream = await anyio.connect_tcp("127.0.0.1", port)
        peer, _ = server.accept()  # (already in the backlog: returns at once)
        with peer:
            async with stream:
                with scopeloop.CancelScope() as scope:
                    scope.cancel()
                    await stream.send(b"must not arrive")
                    raise AssertionError("send() did not raise")
                assert scope.cancelled_caught
            peer.settimeout(5)
            assert peer.recv(100) == b""  # end of stream, and no bytes before it

    try:
        run(main)
    finally:
        server.close()


# -- 8: the other way round ------------------------------------------------------------

def test_scopeloop_shield_inside_a_cancelled_anyio_scope(run: Callable[..., Any]) -> None:
    async def main() -> None:
        with anyio.CancelScope() as outer:
            outer.cancel()
            with scopeloop.CancelScope(shield=True):
                await anyio.sleep(0.01)
                await scopeloop.sleep(0.01)
                finished = True
            await anyio.lowlevel.checkpoint()
            raise AssertionError("not cancelled after the shield")
        assert outer.cancelled_caught and finished
        assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]

    run(main)


def test_groups_nest_with_both_kinds_of_scope(run: Callable[..., Any]) -> None:
    async def program(obs: Observed, Scope: Any) -> None:
        async def child(label: str, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
            task_status.started(label)
            try:
                await anyio.sleep_forever()
            finally:
                obs[label] = "cancelled"

        with Scope() as outer:
            async with anyio.create_task_group() as tg:
                obs["start"] = await tg.start(child, "started")
                tg.start_soon(child, "soon")
                await anyio.wait_all_tasks_blocked()
                outer.cancel()
        obs["caught"] = outer.cancelled_caught
        obs["group caught"] = tg.cancel_scope.cancelled_caught

    assert on_both(run, program) == {
        "start": "started", "started": "cancelled", "soon": "cancelled", "caught": True,
        "group caught": False}


def test_task_group_is_anyio_s_type(run: Callable[..., Any]) -> None:
    async def main() -> None:
        async with anyio.create_task_group() as tg:
            assert isinstance(tg, anyio.abc.TaskGroup) and isinstance(tg, scopeloop.TaskGroup)
            assert isinstance(tg.cancel_scope, anyio.CancelScope)
            handle = tg.create_task(asyncio.sleep(0, "value"))
            assert await handle == "value"
            started = await tg.start(_started_with, 5, return_handle=True)
            assert started.start_value == 5 and await started == 6
        scope = anyio.CancelScope()
        assert isinstance(scope, anyio.CancelScope) and isinstance(scope, scopeloop.CancelScope)

    run(main)


def test_task_handles_speak_anyio(run: Callable[..., Any]) -> None:
    """A bridged handle reports ``anyio.TaskHandle.Status`` and raises AnyIO's
    exceptions (which are scopeloop's too), as on AnyIO's Trio backend."""
    async def program(obs: Observed, Scope: Any) -> None:
        async def fail() -> None:
            raise KeyError("boom")

        try:
            async with anyio.create_task_group() as tg:
                pending = tg.create_task(anyio.sleep_forever())
                obs["pending"] = pending.status is anyio.TaskHandle.Status.PENDING
                try:
                    pending.return_value  # noqa: B018
                except anyio.TaskNotFinished as error:
                    obs["not finished"] = (str(error).startswith("the task has not finished"),
                                           isinstance(error, Exception))
                pending.cancel()
                obs["cancelling"] = pending.status is anyio.TaskHandle.Status.CANCELLING
                try:
                    await pending
                except anyio.TaskCancelled as error:
                    obs["cancelled"] = (pending.status is anyio.TaskHandle.Status.CANCELLED,
                                        isinstance(error.__cause__, anyio.get_cancelled_exc_class()))
                failing = tg.create_task(fail())
                try:
                    await failing
                except anyio.TaskFailed as error:
                    obs["failed"] = (failing.status is anyio.TaskHandle.Status.FAILED,
                                     type(error.__cause__).__name__)
        except BaseExceptionGroup as group:
            obs["group"] = [type(error).__name__ for error in group.exceptions]

    observed = on_both(run, program)
    assert observed["pending"] and observed["cancelling"] and observed["cancelled"] == (True, True)
    assert observed["failed"] == (True, "KeyError") and observed["group"] == ["KeyError"]

    async def caught_as_scopeloop_s() -> tuple[bool, bool]:
        async with anyio.create_task_group() as tg:
            handle = tg.create_task(anyio.sleep_forever())
            handle.cancel()
            try:
                await handle
            except scopeloop.TaskCancelled as error:
                return isinstance(error, anyio.TaskCancelled), isinstance(error, anyio.TaskFailed)
        return False, False

    assert run(caught_as_scopeloop_s) == (True, True)


@pytest.mark.skipif(sys.version_info < (3, 12), reason="asyncio's eager task factory is 3.12+")
def test_children_are_lazy_under_the_stdlib_eager_factory_as_in_anyio(backend: str) -> None:
    """AnyIO's groups call the eager factory's task class directly, so their children
    start at the next pass, not inside start_soon(): the bridge's groups do the same
    (a scopeloop group's children start eagerly there, as asyncio.TaskGroup's do)."""
    async def program(task_class: Any) -> list[object]:
        asyncio.get_running_loop().set_task_factory(
            asyncio.create_eager_task_factory(task_class))  # type: ignore[attr-defined]
        seen: list[object] = []

        async def child(name: str) -> None:
            seen.append((name, asyncio.current_task().get_name()))  # type: ignore[union-attr]

        async with anyio.create_task_group() as tg:
            tg.start_soon(child, "start_soon", name="first")
            handle = tg.create_task(child("create_task"), name="second")
            seen.append(("spawned", handle.status.name))
        return seen

    stock = asyncio.run(program(asyncio.Task))
    bridged = scopeloop.run(program, scopeloop.Task, backend=backend)
    assert stock == [("spawned", "PENDING"), ("start_soon", "first"),
                     ("create_task", "second")]
    assert bridged == stock


async def _started_with(value: int, *, task_status: Any) -> int:
    task_status.started(value)
    return value + 1


# -- 9: AnyIO's asyncio bugs do not appear -------------------------------------------

def test_child_error_cancels_the_group_in_a_cancelled_region(run: Callable[..., Any]) -> None:
    """AnyIO #787: on asyncio a failing child does not cancel its group's scope when an
    enclosing scope is already cancelled."""
    async def program(obs: Observed, Scope: Any) -> None:
        async def fail() -> None:
            raise ValueError("boom")

        async def sibling() -> None:
            with anyio.CancelScope(shield=True):
                await event.wait()
            try:
                await anyio.sleep(10)
            except anyio.get_cancelled_exc_class():
                obs["sibling cancelled"] = True
                raise

        event = anyio.Event()
        with Scope() as outer:
            try:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(sibling)
                    with anyio.CancelScope(shield=True):
                        outer.cancel()
                        tg.start_soon(fail)
                        await anyio.wait_all_tasks_blocked()
                        obs["group cancelled"] = tg.cancel_scope.cancel_called
                        event.set()
            except BaseExceptionGroup as group:
                # (Trio's group also holds the siblings' Cancelled; scopeloop's leaves
                # cancellations out of it, DESIGN §3.3: compare the errors.)
                obs["errors"] = [repr(e) for e in group.exceptions
                                 if not isinstance(e, anyio.get_cancelled_exc_class())]

    assert on_both(run, program) == {
        "group cancelled": True, "sibling cancelled": True, "errors": ["ValueError('boom')"]}


def test_child_error_cancels_its_siblings_at_once(run: Callable[..., Any]) -> None:
    async def program(obs: Observed, Scope: Any) -> None:
        order: list[str] = []

        async def fail() -> None:
            await anyio.lowlevel.checkpoint()
            order.append("fail")
            raise ValueError("boom")

        async def sibling() -> None:
            try:
                await anyio.sleep(10)
            except anyio.get_cancelled_exc_class():
                order.append("sibling cancelled")
                raise

        start = time.monotonic()
        with pytest.raises(ExceptionGroup):
            async with anyio.create_task_group() as tg:
                tg.start_soon(sibling)
                tg.start_soon(fail)
        obs["quick"] = time.monotonic() - start < 5
        obs["order"] = order

    assert on_both(run, program) == {"quick": True, "order": ["fail", "sibling cancelled"]}


def test_group_exit_is_no_cancel_point_when_nothing_was_cancelled(
        run: Callable[..., Any]) -> None:
    """AnyIO #1069: in a cancelled region, a group whose body and children ended
    normally does not raise a cancellation at exit."""
    async def program(obs: Observed, Scope: Any) -> None:
        async def child() -> None:
            with anyio.CancelScope(shield=True):
                await anyio.sleep(0.001)

        with Scope() as outer:
            with anyio.CancelScope(shield=True):
                outer.cancel()
                async with anyio.create_task_group() as tg:
                    tg.start_soon(child)
                obs["after group in shield"] = True
            with anyio.CancelScope(shield=True):
                inner = Scope()
                with inner:
                    inner.cancel()
                    async with anyio.create_task_group() as tg:
                        tg.start_soon(child)
                    obs["after group in cancelled scope"] = True
                obs["inner caught"] = inner.cancelled_caught
            obs["after shield"] = True
            await anyio.lowlevel.checkpoint()
            obs["not reached"] = True
        obs["caught"] = outer.cancelled_caught

    assert on_both(run, program) == {
        "after group in shield": True, "after group in cancelled scope": True,
        "inner caught": False, "after shield": True, "caught": True}


def test_group_raises_when_a_child_ended_cancelled(run: Callable[..., Any]) -> None:
    """AnyIO #1070: a child that ended with the region's cancellation makes the group
    raise it at exit, even if the body ended normally (in a shield)."""
    async def program(obs: Observed, Scope: Any) -> None:
        exited = anyio.Event()

        async def child() -> None:
            try:
                await anyio.sleep_forever()
            finally:
                exited.set()

        with Scope() as outer:
            async with anyio.create_task_group() as tg:
                tg.start_soon(child)
                await anyio.wait_all_tasks_blocked()
                outer.cancel()
                with anyio.CancelScope(shield=True):
                    await exited.wait()
                    await anyio.lowlevel.checkpoint()
                obs["body ended"] = True
            obs["after group: not reached"] = True
        obs["caught"] = outer.cancelled_caught

    assert on_both(run, program) == {"body ended": True, "caught": True}


def test_no_cpu_spin_in_a_shielded_wait_after_a_cancel(run: Callable[..., Any]) -> None:
    """AnyIO #1257: a task waiting in a shield inside a cancelled scope costs no CPU."""
    async def main() -> None:
        async def shielded() -> None:
            with anyio.CancelScope(shield=True):
                await anyio.sleep(0.3)

        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as tg:
                tg.start_soon(shielded)
                await anyio.wait_all_tasks_blocked()
                wall, cpu = time.monotonic(), time.process_time()
                scope.cancel()
            wall, cpu = time.monotonic() - wall, time.process_time() - cpu
        assert wall >= 0.25
        assert cpu / wall < 0.5, (cpu, wall)

    run(main)


# -- 10: AnyIO's own fixes are kept ----------------------------------------------------

def test_cancellation_in_an_exception_group_is_caught(run: Callable[..., Any]) -> None:
    async def program(obs: Observed, Scope: Any) -> None:
        with anyio.CancelScope() as scope:
            scope.cancel()
            try:
                await anyio.lowlevel.checkpoint()
            except anyio.get_cancelled_exc_class() as cancelled:
                raise BaseExceptionGroup("wrapped", [cancelled]) from None
        obs["caught"] = scope.cancelled_caught
        with pytest.raises(ExceptionGroup) as info:
            with anyio.CancelScope() as scope:
                scope.cancel()
                try:
                    await anyio.lowlevel.checkpoint()
                except anyio.get_cancelled_exc_class() as cancelled:
                    raise BaseExceptionGroup("wrapped", [cancelled, ValueError("x")]) from None
        obs["rest"] = [repr(e) for e in info.value.exceptions]

    assert on_both(run, program) == {"caught": True, "rest": ["ValueError('x')"]}


def test_cancellation_re_raised_as_a_new_cancelled_error_is_caught(
        run: Callable[..., Any]) -> None:
    # (Trio's Cancelled cannot be constructed: compared with AnyIO's asyncio backend.)
    async def main() -> bool:
        with anyio.CancelScope() as scope:
            scope.cancel()
            try:
                await anyio.sleep(1)
            except asyncio.CancelledError:
                raise asyncio.CancelledError("a library's own") from None
        return scope.cancelled_caught

    assert run(main) is True
    assert anyio.run(main, backend="asyncio") is True


# -- 11: switching on and off -----------------------------------------------------

def test_opted_out_loop_and_stock_loop_keep_anyio_s_scopes(backend: str) -> None:
    from anyio._backends import _asyncio

    async def main() -> type:
        scope_type = type(anyio.CancelScope())
        with scopeloop.CancelScope() as outer:
            outer.cancel()
            with anyio.CancelScope(shield=True):
                try:
                    await asyncio.sleep(0.001)
                except asyncio.CancelledError:
                    return scope_type  # AnyIO's shield is invisible to scopeloop
        raise AssertionError("the shield held: the bridge is on")

    # (While installed, the backend module's own name CancelScope dispatches; the
    # scopes it makes outside bridged tasks are still of AnyIO's class.)
    stock_class = anyio_compat._stock_scope_class
    assert scopeloop.run(main, backend=backend, anyio_bridge=False) is stock_class
    assert anyio_compat.is_installed()

    async def stock() -> tuple[type, type]:
        async with anyio.create_task_group() as tg:
            pass
        return type(anyio.CancelScope()), type(tg)

    assert asyncio.run(stock()) == (stock_class, _asyncio.TaskGroup)


def test_cancelled_process_block_still_reaps_the_process(run: Callable[..., Any]) -> None:
    """AnyIO's Process.aclose() shields itself with the backend's own scope class: in
    a cancelled scopeloop region that shield holds too, so the process is killed and
    waited for, as on Trio."""
    async def program(obs: Observed, Scope: Any) -> None:
        with Scope() as scope:
            async with await anyio.open_process(
                    [sys.executable, "-c", "import time; time.sleep(30)"]) as process:
                scope.cancel()
        obs["reaped"] = process.returncode is not None
        obs["killed"] = process.returncode not in (None, 0)
        obs["caught"] = scope.cancelled_caught

    assert on_both(run, program) == {"reaped": True, "killed": True, "caught": True}


@pytest.mark.parametrize("loop", ["scopeloop", "stock"])
@pytest.mark.parametrize("checkpoint", ["lowlevel.checkpoint", "sleep(0)"])
def test_checkpoint_yields_and_raises_on_every_loop(run: Callable[..., Any], loop: str,
                                                    checkpoint: str) -> None:
    """The bridge's checkpoint and sleep(0) (one bare yield, on every loop) let the
    other tasks run and raise in a cancelled scope, and sleep(delay > 0) still sleeps."""
    assert anyio_compat.install()
    pause = anyio.lowlevel.checkpoint if checkpoint == "lowlevel.checkpoint" else (
        lambda: anyio.sleep(0))

    async def program() -> Observed:
        obs: Observed = {}
        ran: list[str] = []

        async def other() -> None:
            ran.append("other")

        async with anyio.create_task_group() as tg:
            tg.start_soon(other)
            await pause()
            obs["other ran during the checkpoint"] = ran == ["other"]
        with anyio.CancelScope() as scope:
            scope.cancel()
            await pause()
            obs["reached after the cancelled checkpoint"] = True
        obs["caught"] = scope.cancelled_caught
        waited = anyio.current_time()
        await anyio.sleep(0.02)
        # (A lower bound only; uvloop's clock has millisecond steps, so a timer may
        # be seen to fire up to a millisecond early.  A bare yield takes microseconds.)
        obs["sleep(0.02) slept"] = anyio.current_time() - waited >= 0.015
        return obs

    expected = {"other ran during the checkpoint": True, "caught": True,
                "sleep(0.02) slept": True}
    if loop == "scopeloop":
        assert run(program) == expected
    else:
        assert asyncio.run(program()) == expected


def test_install_uninstall_round_trip() -> None:
    from anyio._backends._asyncio import AsyncIOBackend

    assert anyio_compat.install() and anyio_compat.install()
    patched = dict(vars(AsyncIOBackend))
    saved = dict(anyio_compat._saved)
    try:
        anyio_compat.uninstall()
        anyio_compat.uninstall()
        assert not anyio_compat.is_installed()
        assert all(vars(AsyncIOBackend)[name] is saved[name]
                   for name in anyio_compat._PATCHES)
        from anyio._backends import _asyncio
        assert _asyncio.CancelScope is anyio_compat._stock_scope_class
        assert vars(AsyncIOBackend) != patched
        scopeloop.new_event_loop().close()  # no automatic install after uninstall()
        assert not anyio_compat.is_installed()
    finally:
        assert anyio_compat.install()
    assert dict(vars(AsyncIOBackend)).keys() == patched.keys()


def test_version_gate_warns_once(monkeypatch: pytest.MonkeyPatch) -> None:
    anyio_compat.uninstall()
    monkeypatch.setattr(anyio_compat, "_anyio_version", lambda: "4.17.0")
    monkeypatch.setattr(anyio_compat, "_warned", False)
    try:
        with pytest.warns(RuntimeWarning, match=r"anyio>=4.14,<4.17.*SCOPELOOP_ANYIO_BRIDGE=0"):
            assert anyio_compat.install() is False
        assert not anyio_compat.is_installed()
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert anyio_compat.install() is False  # once only
        monkeypatch.setattr(anyio_compat, "_anyio_version", lambda: "4.13.2")
        assert anyio_compat.install() is False
    finally:
        monkeypatch.undo()
        assert anyio_compat.install()


def _fresh(code: str, **env: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, capture_output=True,
        text=True, timeout=60, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", **env})
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


_PROBE = """
    async def main():
        return type(anyio.CancelScope()).__name__
    print(scopeloop.run(main, backend="asyncio"), 'anyio' in str(sys.modules.get('scopeloop.anyio_compat')))
"""


@pytest.mark.parametrize("order", ["anyio first", "scopeloop first", "backend loaded first"])
def test_switched_on_automatically_whatever_the_import_order(order: str) -> None:
    imports = {"anyio first": "import anyio, scopeloop",
               "scopeloop first": "import scopeloop, anyio",
               "backend loaded first": "import anyio._backends._asyncio, scopeloop, anyio"}[order]
    assert _fresh(f"import sys\n{imports}" + textwrap.dedent(_PROBE)) == "_AnyIOScope True"


def test_opt_out_by_environment_and_no_anyio_import() -> None:
    assert _fresh("import sys, anyio, scopeloop" + textwrap.dedent(_PROBE),
                  SCOPELOOP_ANYIO_BRIDGE="0") == "CancelScope False"
    assert _fresh("""
        import sys, scopeloop
        async def main():
            pass
        scopeloop.run(main, backend="asyncio")
        print(sorted(m for m in sys.modules if m.startswith("anyio")))
    """) == "[]"


def test_sniffio_still_says_asyncio(run: Callable[..., Any]) -> None:
    async def main() -> None:
        assert sniffio.current_async_library() == "asyncio"
        with anyio.CancelScope(shield=True):
            assert sniffio.current_async_library() == "asyncio"

    run(main)
