"""Debug mode's leftover reports, group-owned callbacks, and the task/scope tree."""

from __future__ import annotations

import asyncio
import gc
import io
import os
import re
import signal
import subprocess
import sys
import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import scopeloop
from scopeloop import diagnostics
from scopeloop.loop import AsyncioEventLoop

HERE = Path(__file__).resolve()
SCENARIOS = HERE.parent / "scenarios"
ROOT = HERE.parent.parent


def line_of(marker: str) -> int:
    """The line of this file that ends with the comment ``# <marker>``."""
    for number, line in enumerate(HERE.read_text().splitlines(), 1):
        if line.rstrip().endswith("# " + marker):
            return number
    raise LookupError(marker)


def site(marker: str) -> str:
    return f"{HERE}:{line_of(marker)}"


def run_debug(backend: str, main: Callable[..., Any], *args: Any) -> list[warnings.WarningMessage]:
    """Run ``main`` in debug mode; return the LeftoverWarnings it produced."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scopeloop.run(main, *args, backend=backend, debug=True)
    return [w for w in caught if issubclass(w.category, scopeloop.LeftoverWarning)]


def child_env(backend: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ, SCOPELOOP_BACKEND=backend, **extra)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    env.pop("PYTHONWARNINGS", None)
    env.pop("PYTHONDEVMODE", None)
    return env


# -- debug mode is a separate loop class ----------------------------------------

def _backend_base(backend: str) -> type:
    if backend == "uvloop":
        import uvloop
        return uvloop.Loop  # type: ignore[no-any-return]
    return asyncio.SelectorEventLoop


def test_debug_loop_is_a_subclass_and_plain_loops_are_untouched(backend: str) -> None:
    debug = scopeloop.new_event_loop(backend, debug=True)
    plain = scopeloop.new_event_loop(backend)
    try:
        assert isinstance(debug, diagnostics.debug_loop_class(backend))
        assert isinstance(debug, type(plain))
        assert debug.get_debug()
        assert not isinstance(plain, diagnostics._DebugLoopMixin)
        base = _backend_base(backend)
        for name in ("call_soon", "call_later", "call_at"):
            # With debug off the backend's own method runs: no diagnostics cost at all.
            assert getattr(type(plain), name) is getattr(base, name), name
    finally:
        debug.close()
        plain.close()


@pytest.mark.parametrize("value, expected", [("1", True), ("0", False), ("", False)])
def test_scopeloop_debug_environment_variable(backend: str, monkeypatch: pytest.MonkeyPatch,
                                              value: str, expected: bool) -> None:
    monkeypatch.setenv("SCOPELOOP_DEBUG", value)
    loop = scopeloop.new_event_loop(backend)
    try:
        assert isinstance(loop, diagnostics._DebugLoopMixin) is expected
    finally:
        loop.close()


def test_run_debug_runs_on_a_debug_loop(backend: str) -> None:
    async def main() -> type:
        return type(asyncio.get_running_loop())

    assert scopeloop.run(main, backend=backend, debug=True) is diagnostics.debug_loop_class(backend)


def test_leftover_warning_is_an_exported_resource_warning() -> None:
    assert issubclass(scopeloop.LeftoverWarning, ResourceWarning)
    assert "LeftoverWarning" in scopeloop.__all__


# -- leftovers ----------------------------------------------------------------------

def test_scenario_cleanup_after_cancel(backend: str) -> None:
    result = subprocess.run([sys.executable, str(SCENARIOS / "cleanup_after_cancel.py")],
                            env=child_env(backend), capture_output=True, text=True,
                            timeout=60, cwd=SCENARIOS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.rstrip().endswith("ok")


async def _leave_a_timer(fired: list[str]) -> None:
    with scopeloop.CancelScope() as scope:
        _leave_a_timer.scope = scope  # type: ignore[attr-defined]
        try:
            await asyncio.Event().wait()
        finally:
            asyncio.get_running_loop().call_later(30, fired.append, "late")  # TIMER


def test_timer_left_by_a_cancelled_task(backend: str) -> None:
    fired: list[str] = []

    async def main() -> None:
        task = asyncio.create_task(_leave_a_timer(fired), name="victim")
        await asyncio.sleep(0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    caught = run_debug(backend, main)
    assert len(caught) == 1, [str(w.message) for w in caught]
    warning = caught[0]
    message = str(warning.message)
    # Attributed to the creation site, and naming it, the owner and its scope.
    assert (warning.filename, warning.lineno) == (str(HERE), line_of("TIMER"))
    assert message.startswith(f"timer list.append('late'), created at {site('TIMER')} in "
                              f"_leave_a_timer() by task 'victim' (in scope "
                              f"{id(_leave_a_timer.scope):x}), was still pending when that "
                              f"task was cancelled; ")  # type: ignore[attr-defined]
    assert "TaskGroup.call_soon()/call_later()" in message
    assert fired == []


def test_a_timer_is_reported_once_even_if_it_fires_later(backend: str) -> None:
    async def schedule(done: asyncio.Event) -> None:
        asyncio.get_running_loop().call_later(0.01, done.set)  # ONCE

    async def main() -> None:
        done = asyncio.Event()
        await asyncio.create_task(schedule(done))
        await done.wait()  # the timer fires after its task ended

    caught = run_debug(backend, main)
    assert [(w.lineno, "was still pending when that task finished" in str(w.message))
            for w in caught] == [(line_of("ONCE"), True)]


def test_callback_scheduled_in_the_last_step_is_reported_when_it_runs(backend: str) -> None:
    ran: list[int] = []

    async def last_words() -> None:
        asyncio.get_running_loop().call_soon(ran.append, 1)  # LAST-STEP

    async def main() -> None:
        await asyncio.create_task(last_words(), name="speaker")
        await asyncio.sleep(0)

    caught = run_debug(backend, main)
    assert ran == [1]  # debug mode reports, it does not change what runs
    assert len(caught) == 1
    assert str(caught[0].message).startswith(
        f"callback list.append(1), created at {site('LAST-STEP')} in "
        f"test_callback_scheduled_in_the_last_step_is_reported_when_it_runs.<locals>."
        f"last_words() by task 'speaker'")
    assert "ran after that task finished" in str(caught[0].message)


def test_orphan_task_is_reported(backend: str) -> None:
    async def orphan(release: asyncio.Event) -> None:
        await release.wait()

    async def parent(release: asyncio.Event) -> None:
        asyncio.create_task(orphan(release), name="orphan")  # ORPHAN

    async def main() -> None:
        release = asyncio.Event()
        await asyncio.create_task(parent(release), name="parent")
        release.set()
        await asyncio.sleep(0)

    caught = run_debug(backend, main)
    assert len(caught) == 1
    message = str(caught[0].message)
    assert message.startswith(
        f"task 'orphan' running test_orphan_task_is_reported.<locals>.orphan(), created at "
        f"{site('ORPHAN')} in test_orphan_task_is_reported.<locals>.parent() by task "
        f"'parent' outside any task group, was still running when that task finished; ")
    assert caught[0].lineno == line_of("ORPHAN")


@pytest.mark.skipif(sys.version_info < (3, 12), reason="eager task factories exist from Python 3.12")
def test_eager_tasks_are_recorded(backend: str) -> None:
    async def quick() -> int:
        return 1

    async def slow(release: asyncio.Event) -> None:
        await release.wait()

    async def parent(release: asyncio.Event) -> None:
        assert await asyncio.create_task(quick()) == 1  # finished within create_task
        asyncio.create_task(slow(release), name="eager orphan")  # EAGER

    async def main() -> None:
        asyncio.get_running_loop().set_task_factory(scopeloop.eager_task_factory)
        release = asyncio.Event()
        await asyncio.create_task(parent(release), name="parent")
        release.set()
        await asyncio.sleep(0)

    caught = run_debug(backend, main)
    assert [(w.lineno, str(w.message).split(",")[0]) for w in caught] == [
        (line_of("EAGER"), "task 'eager orphan' running "
                           "test_eager_tasks_are_recorded.<locals>.slow()")]


def test_leftover_of_a_task_still_running_is_reported_when_the_loop_closes(backend: str) -> None:
    loop = scopeloop.new_event_loop(backend, debug=True)
    stop = asyncio.Event()

    async def holder(ready: asyncio.Event) -> None:
        loop.call_later(60, print)  # AT-CLOSE
        ready.set()
        await stop.wait()

    async def main() -> asyncio.Task[None]:
        ready = asyncio.Event()
        task = loop.create_task(holder(ready))
        await ready.wait()
        return task

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        task = loop.run_until_complete(main())
        loop.close()
    task._log_destroy_pending = False  # type: ignore[attr-defined]  # it never ends, on purpose
    timers = [str(w.message) for w in caught if str(w.message).startswith("timer ")]
    assert len(timers) == 1
    assert timers[0].startswith(f"timer print(), created at {site('AT-CLOSE')} in ")
    assert "was still pending when the event loop closed" in timers[0]


def test_warnings_are_visible_by_default_in_debug_mode_only(backend: str) -> None:
    program = ("import asyncio, sys, scopeloop\n"
               "async def main():\n"
               "    asyncio.get_running_loop().call_later(30, print)\n"
               "scopeloop.run(main, debug=sys.argv[1] == 'debug')\n")
    for mode in ("debug", "plain"):
        result = subprocess.run([sys.executable, "-c", program, mode], env=child_env(backend),
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        if mode == "debug":
            assert "<string>:3: LeftoverWarning: timer print(), created at <string>:3" in result.stderr
        else:
            assert result.stderr == ""


# -- no false positives -------------------------------------------------------------

async def _tidy_program() -> None:
    """Uses timers, callbacks and tasks in many ways, and leaves nothing behind."""
    loop = asyncio.get_running_loop()

    async def worker(n: int) -> int:
        await asyncio.sleep(0.001)
        return n

    async def forever() -> None:
        await asyncio.Event().wait()

    # Task groups: children, start(), a deadline that fires, a failing child.
    async with scopeloop.create_task_group() as tg:
        tg.start_soon(worker, 1)

        async def started(task_status: Any = scopeloop.TASK_STATUS_IGNORED) -> None:
            task_status.started()
            await asyncio.sleep(0.001)

        await tg.start(started)
        tg.start_soon(forever)
        tg.call_later(30, print)  # owned by the group: cancelled when it exits
        tg.call_soon(lambda: None)
        with scopeloop.move_on_after(0.001):
            await asyncio.Event().wait()
        tg.cancel_scope.cancel()
    with pytest.raises(TimeoutError):
        with scopeloop.fail_after(0.001):
            await asyncio.Event().wait()

    async def fails() -> None:
        raise ValueError("boom")

    with pytest.raises(ExceptionGroup):
        async with scopeloop.create_task_group() as tg:
            tg.start_soon(forever)
            tg.start_soon(fails)

    # A child spawning into its own group and ending before its sibling.
    async with scopeloop.create_task_group() as tg:
        async def spawner() -> None:
            tg.start_soon(worker, 2)
            tg.call_later(30, print)
        tg.start_soon(spawner)

    # asyncio's own: timeouts, wait_for, TaskGroup, gather, shield, queues, events.
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.001):
            await asyncio.Event().wait()
    async with asyncio.timeout(30):
        await asyncio.sleep(0)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(forever(), 0.001)
    assert await asyncio.wait_for(worker(3), 30) == 3
    async with asyncio.TaskGroup() as atg:
        async def asyncio_spawner() -> None:
            atg.create_task(worker(4))
        atg.create_task(asyncio_spawner())
        atg.create_task(worker(5))
    assert await asyncio.gather(worker(6), worker(7)) == [6, 7]
    gathered = asyncio.gather(forever(), forever())
    await asyncio.sleep(0)
    gathered.cancel()
    await asyncio.gather(gathered, return_exceptions=True)
    assert await asyncio.shield(worker(8)) == 8
    queue: asyncio.Queue[int] = asyncio.Queue()
    consumer = asyncio.create_task(queue.get())
    queue.put_nowait(9)
    assert await consumer == 9
    fut = loop.create_future()
    loop.call_soon(fut.set_result, 10)
    assert await fut == 10
    task = asyncio.create_task(forever())
    await asyncio.sleep(0)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    # A timer cancelled in a finally block, as it should be.
    handle = loop.call_later(30, print)
    try:
        await asyncio.sleep(0)
    finally:
        handle.cancel()
    # Streams, threads, and a cancelled scope around a shield.
    send, receive = scopeloop.create_memory_object_stream(1)
    async with send, receive:
        await send.send(11)
        assert await receive.receive() == 11
    assert await asyncio.to_thread(lambda: 12) == 12
    with scopeloop.CancelScope() as outer:
        outer.cancel()
        with scopeloop.CancelScope(shield=True):
            await asyncio.sleep(0.001)
        await asyncio.sleep(0)


def test_tidy_program_produces_no_warning(backend: str) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scopeloop.run(_tidy_program, backend=backend, debug=True)
    assert [str(w.message) for w in caught] == []


def test_work_scheduled_by_a_library_is_the_librarys(backend: str, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "fakelib.py").write_text(
        "import asyncio\n"
        "def schedule():\n"
        "    return asyncio.get_running_loop().call_later(30, print)\n"
        "def spawn(coro):\n"
        "    return asyncio.create_task(coro)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "fakelib", raising=False)
    import fakelib

    async def user(made: list[Any], release: asyncio.Event) -> None:
        made.append(fakelib.schedule())
        made.append(fakelib.spawn(release.wait()))

    async def main() -> None:
        made: list[Any] = []
        release = asyncio.Event()
        await asyncio.create_task(user(made, release))
        made[0].cancel()
        release.set()
        await made[1]

    # As program code, the library's timer and task are the user task's leftovers...
    assert [w.filename for w in run_debug(backend, main)] == [fakelib.__file__] * 2
    # ...but installed code manages what it schedules: nothing is recorded.
    monkeypatch.setattr(diagnostics._sites, "_LIBRARY_DIRS",
                        diagnostics._sites._LIBRARY_DIRS + (str(tmp_path) + os.sep,))
    assert run_debug(backend, main) == []


def test_a_busy_task_keeps_few_records(backend: str) -> None:
    async def main() -> int:
        loop = asyncio.get_running_loop()
        ran = asyncio.Event()
        for _ in range(300):
            loop.call_later(30, print).cancel()
            loop.call_soon(ran.set)
        await ran.wait()
        # Records of cancelled timers are dropped as the set doubles; those of
        # callbacks that ran, as they run.
        return len(loop._diag_owned[asyncio.current_task()])  # type: ignore[attr-defined,index]

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert scopeloop.run(main, backend=backend, debug=True) < 300


def test_structured_children_outliving_their_spawner_are_not_leftovers(backend: str) -> None:
    async def main() -> None:
        release = asyncio.Event()

        async def waiter() -> None:
            await release.wait()

        async with scopeloop.create_task_group() as tg:
            async def spawner() -> None:
                tg.start_soon(waiter)  # the group owns it, not the spawner
            await tg.start(_started_then, spawner)
            await scopeloop.wait_all_tasks_blocked()
            release.set()
        async with asyncio.TaskGroup() as atg:
            release.clear()

            async def asyncio_spawner() -> None:
                atg.create_task(waiter())
            atg.create_task(asyncio_spawner())
            await scopeloop.wait_all_tasks_blocked()
            release.set()

    assert run_debug(backend, main) == []


async def _started_then(then: Callable[[], Any],
                        task_status: Any = scopeloop.TASK_STATUS_IGNORED) -> None:
    task_status.started()
    await then()


# -- callbacks owned by a task group -------------------------------------------------

def test_group_call_soon_and_call_later_run_while_the_group_is_open(run: Any) -> None:
    async def main() -> list[Any]:
        calls: list[Any] = []
        done = asyncio.Event()
        async with scopeloop.create_task_group() as tg:
            before = asyncio.get_running_loop().time()
            soon = tg.call_soon(calls.append, "soon")
            later = tg.call_later(0.001, lambda: (calls.append("later"), done.set()))
            # Handles as the loop makes them (uvloop's are not asyncio.Handle).
            # Measured against the time before the call: comparing with time()
            # afterwards fails whenever the shared machine stalls us for 1 ms.
            assert not soon.cancelled() and not later.cancelled()
            assert 0 < later.when() - before < 1
            await done.wait()
        return calls

    # Sorted: libuv runs due timers before the callbacks queued with call_soon, so
    # on uvloop a 1 ms timer can come first when the step took that long.
    assert sorted(run(main)) == ["later", "soon"]


@pytest.mark.parametrize("how", ["cancel", "deadline", "failing child", "host error"])
def test_group_callbacks_are_cancelled_with_the_group(run: Any, how: str) -> None:
    async def main() -> tuple[bool, bool]:
        fired: list[int] = []
        seen_while_open: list[bool] = []
        tg = scopeloop.create_task_group()
        with pytest.raises(ExceptionGroup) if how in ("failing child", "host error") \
                else _no_error():
            async with tg:
                later = tg.call_later(30, fired.append, 1)
                soon = tg.call_soon(fired.append, 2)

                async def observer() -> None:
                    # Runs on after the group's scope is cancelled, while the group
                    # is still open waiting for it.
                    try:
                        await asyncio.Event().wait()
                    finally:
                        seen_while_open.append(later.cancelled())

                tg.start_soon(observer)
                if how == "cancel":
                    tg.cancel_scope.cancel()
                elif how == "deadline":
                    tg.cancel_scope.deadline = scopeloop.current_time() + 0.001
                elif how == "failing child":
                    async def fail() -> None:
                        raise KeyError("child")
                    tg.start_soon(fail)
                else:
                    raise KeyError("host")
        assert 1 not in fired
        if how in ("cancel", "host error"):
            assert fired == []  # cancelled before the loop ran anything
        # (Else the call_soon callback may have run before the deadline or the
        # failure; cancelling a handle that ran is harmless.)
        return later.cancelled() and soon.cancelled(), seen_while_open == [True]

    assert run(main) == (True, True)


class _no_error:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return False


def test_group_callbacks_left_at_a_normal_exit_are_cancelled(run: Any) -> None:
    async def main() -> bool:
        async with scopeloop.create_task_group() as tg:
            later = tg.call_later(30, print)
        return later.cancelled()

    assert run(main)


def test_group_callbacks_on_a_cancelled_group_are_born_cancelled(run: Any) -> None:
    async def main() -> bool:
        ran: list[int] = []
        async with scopeloop.create_task_group() as tg:
            tg.cancel_scope.cancel()
            soon = tg.call_soon(ran.append, 1)
            with scopeloop.CancelScope(shield=True):
                await asyncio.sleep(0)
            assert ran == []
        return soon.cancelled()

    assert run(main)


def test_group_callbacks_need_an_open_group(run: Any) -> None:
    async def main() -> None:
        tg = scopeloop.create_task_group()
        with pytest.raises(RuntimeError, match=r"call_soon\(\): this TaskGroup has not been entered"):
            tg.call_soon(print)
        async with tg:
            pass
        with pytest.raises(RuntimeError, match=r"call_later\(\): this TaskGroup has already exited"):
            tg.call_later(1, print)

    run(main)


def test_group_forgets_callbacks_that_ran(run: Any) -> None:
    async def main() -> int:
        async with scopeloop.create_task_group() as tg:
            for _ in range(100):
                tg.call_soon(lambda: None)
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            gc.collect()
            return len(tg.cancel_scope._handles)  # type: ignore[attr-defined]

    assert run(main) == 0


def test_group_callback_context(run: Any) -> None:
    import contextvars
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")

    async def main() -> list[str]:
        seen: list[str] = []
        context = contextvars.copy_context()
        context.run(var.set, "in context")
        async with scopeloop.create_task_group() as tg:
            tg.call_soon(lambda: seen.append(var.get()), context=context)
            await asyncio.sleep(0)
        return seen

    assert run(main) == ["in context"]


# -- the tree -------------------------------------------------------------------------

def normalise(text: str) -> str:
    """Hide what varies between runs: ids, task numbers, times, foreign line numbers."""
    text = re.sub(r"\b[0-9a-f]{8,}\b", "ID", text)
    text = re.sub(r"'Task-\d+'", "'Task-N'", text)
    text = re.sub(r"(deadline in |due in )\d+\.\d+s", r"\1Ns", text)

    def path(match: re.Match[str]) -> str:
        name, line = match.group(1), match.group(2)
        return f"{name}:{line if name == HERE.name else 'N'}"
    return re.sub(r"(?:\S*/)?([\w.]+\.py):(\d+)", path, text)


async def _blocked(event: asyncio.Event) -> None:
    await event.wait()  # BLOCKED


async def _sleeper(scopes: list[scopeloop.CancelScope]) -> None:
    with scopeloop.CancelScope(shield=True) as shield:
        scopes.append(shield)
        with scopeloop.move_on_after(30):
            await asyncio.sleep(60)  # SLEEPER


def test_tree_format(run: Any, backend: str) -> None:
    async def main() -> str:
        event = asyncio.Event()
        shields: list[scopeloop.CancelScope] = []
        async with scopeloop.create_task_group() as tg:
            tg.start_soon(_sleeper, shields, name="sleeper")
            tg.start_soon(_blocked, event, name="blocked")
            await scopeloop.wait_all_tasks_blocked()
            text = scopeloop.format_tree()  # FORMAT
            tg.cancel_scope.cancel()
            shields[0].cancel()
        return text

    name = HERE.name
    assert normalise(run(main)).splitlines() == [
        f"scopeloop task tree: 3 tasks ({backend} backend)",
        f"task 'Task-N' running at {name}:{line_of('FORMAT')} in test_tree_format.<locals>.main()",
        "`- scope ID",
        "   `- scope ID: task group with 2 tasks",
        f"      +- task 'blocked' waiting at locks.py:N in Event.wait(), called from "
        f"{name}:{line_of('BLOCKED')} in _blocked()",
        f"      `- task 'sleeper' waiting at tasks.py:N in sleep(), called from "
        f"{name}:{line_of('SLEEPER')} in _sleeper()",
        "         `- scope ID: shield",
        "            `- scope ID: deadline in Ns",
    ]


def test_tree_shows_cancellation(run: Any) -> None:
    async def shielded(event: asyncio.Event) -> None:
        with scopeloop.CancelScope(shield=True):
            await event.wait()

    async def main() -> tuple[str, int]:
        event = asyncio.Event()
        native = asyncio.create_task(event.wait(), name="native")
        async with scopeloop.create_task_group() as tg:
            tg.start_soon(shielded, event, name="shielded")
            await scopeloop.wait_all_tasks_blocked()
            native.cancel()
            tg.cancel_scope.cancel("stop")
            text = scopeloop.format_tree()
            event.set()
        await asyncio.gather(native, return_exceptions=True)
        return text, id(tg.cancel_scope)

    text, group_id = run(main)
    lines = text.splitlines()
    host = next(line for line in lines if line.startswith("task "))
    assert f"; cancelled by scope {group_id:x} (stop)" in host
    assert any(line.endswith(f"scope {group_id:x}: task group with 1 task, cancelled (stop)")
               for line in lines)
    child = next(line for line in lines if "task 'shielded'" in line)
    assert "cancelled by" not in child  # the shield keeps the cancellation out
    assert lines[lines.index(child) + 1].endswith(": shield")
    native_line = next(line for line in lines if "task 'native'" in line)
    assert native_line.startswith("task 'native' waiting at ")  # a root: not in a group
    assert native_line.endswith("; cancel() requested 1x")


def test_hang_is_diagnosed_from_the_tree(run: Any) -> None:
    """A receiver that nobody sends to: the tree shows where it waits, forever."""
    async def receiver(receive: Any) -> None:
        async for _ in receive:  # RECEIVER
            pass

    async def main() -> str:
        send, receive = scopeloop.create_memory_object_stream()
        tree = ""

        async def watchdog(tg: scopeloop.TaskGroup) -> None:
            nonlocal tree
            await scopeloop.wait_all_tasks_blocked()
            tree = scopeloop.format_tree()
            tg.cancel_scope.cancel("hang")

        async with send, receive:
            async with scopeloop.create_task_group() as tg:
                tg.start_soon(receiver, receive, name="receiver")
                tg.start_soon(watchdog, tg, name="watchdog")
        return tree

    lines = normalise(run(main)).splitlines()
    receiver_line = next(line for line in lines if "task 'receiver'" in line)
    assert receiver_line.startswith("      +- task 'receiver' waiting at ")
    assert receiver_line.endswith(
        f", called from {HERE.name}:{line_of('RECEIVER')} in "
        f"test_hang_is_diagnosed_from_the_tree.<locals>.receiver()")
    host = lines[1]
    assert host.startswith("task 'Task-N' waiting at group.py:N in TaskGroup.__aexit__(), called from")
    # The host's own scopes: the root scope and the group; the shield the group
    # waits in is internal and not shown.
    assert lines[2] == "`- scope ID"
    assert lines[3] == "   `- scope ID: task group with 2 tasks"
    assert sum(bool(re.match(r"[ |+`-]*scope ID", line)) for line in lines) == 2


def test_tree_in_debug_mode_shows_origins_and_pending_work(backend: str) -> None:
    async def main() -> str:
        release = asyncio.Event()
        loose = asyncio.create_task(release.wait(), name="loose")  # LOOSE
        handle = asyncio.get_running_loop().call_later(30, print, "x")  # PENDING
        async with scopeloop.create_task_group() as tg:
            tg.start_soon(_blocked, release, name="child")  # CHILD
            await scopeloop.wait_all_tasks_blocked()
            text = scopeloop.format_tree()
            release.set()
        handle.cancel()
        await loose
        return text

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and no leftovers
        lines = normalise(scopeloop.run(main, backend=backend, debug=True)).splitlines()
    name = HERE.name
    assert lines[0] == f"scopeloop task tree: 3 tasks ({backend} backend, debug)"
    assert lines[2] == "+- scope ID"
    assert lines[3] == "|  `- scope ID: task group with 1 task"
    assert lines[4] == (f"|     `- task 'child' waiting at locks.py:N in Event.wait(), called from "
                        f"{name}:{line_of('BLOCKED')} in _blocked(); created at "
                        f"{name}:{line_of('CHILD')} in "
                        f"test_tree_in_debug_mode_shows_origins_and_pending_work.<locals>.main()")
    assert lines[5] == (f"+- pending timer print('x') due in Ns, created at {name}:"
                        f"{line_of('PENDING')} in "
                        f"test_tree_in_debug_mode_shows_origins_and_pending_work.<locals>.main()")
    assert lines[6].startswith("`- task 'loose' waiting at locks.py:N in Event.wait(); created at "
                               f"{name}:{line_of('LOOSE')} in ")
    assert lines[6].endswith("; outside any task group")
    assert len(lines) == 7


def test_print_tree_writes_to_stderr(run: Any, capsys: pytest.CaptureFixture[str]) -> None:
    async def main() -> None:
        scopeloop.print_tree()
        out = io.StringIO()
        scopeloop.print_tree(file=out)
        assert out.getvalue().startswith("scopeloop task tree: 1 task (")

    run(main)
    assert capsys.readouterr().err.startswith("scopeloop task tree: 1 task (")


def test_format_tree_needs_a_loop() -> None:
    with pytest.raises(RuntimeError, match=r"format_tree\(\) needs a running event loop"):
        scopeloop.format_tree()


def test_format_tree_of_another_loop_and_a_stock_loop() -> None:
    async def main() -> str:
        waiter = asyncio.create_task(asyncio.Event().wait(), name="stock")
        await asyncio.sleep(0)
        text = scopeloop.format_tree(asyncio.get_running_loop())
        waiter.cancel()
        return text

    text = asyncio.run(main())
    assert "task 'stock' waiting at " in text
    assert "scope " not in text


# -- the tree on a signal -------------------------------------------------------------

_HANGING = """\
import scopeloop

async def receiver(receive):
    await receive.receive()  # nobody ever sends

async def main():
    send, receive = scopeloop.create_memory_object_stream()
    async with scopeloop.create_task_group() as tg:
        tg.start_soon(receiver, receive, name="receiver")
        await scopeloop.wait_all_tasks_blocked()
        print("ready", flush=True)

scopeloop.run(main, debug=True)
"""


@pytest.mark.skipif(not hasattr(signal, "SIGUSR1"), reason="no SIGUSR1 on this platform")
@pytest.mark.parametrize("setting, signum", [(None, "SIGUSR1"), ("SIGUSR2", "SIGUSR2"),
                                             ("usr2", "SIGUSR2")])
def test_signal_prints_the_tree_of_a_hanging_program(backend: str, tmp_path: Path,
                                                     setting: str | None, signum: str) -> None:
    script = tmp_path / "hanging.py"
    script.write_text(_HANGING)
    env = child_env(backend, **({"SCOPELOOP_TREE_SIGNAL": setting} if setting else {}))
    proc = subprocess.Popen([sys.executable, str(script)], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    killer = threading.Timer(60, proc.kill)  # never hang the test suite itself
    killer.start()
    try:
        assert proc.stdout is not None and proc.stderr is not None
        assert proc.stdout.readline() == "ready\n"
        proc.send_signal(getattr(signal, signum))
        tree = []
        for line in proc.stderr:
            tree.append(line)
            if "task 'receiver'" in line:
                break
        proc.send_signal(signal.SIGINT)  # Ctrl+C: the program unwinds and exits
        proc.communicate()
    finally:
        killer.cancel()
        proc.kill()
    assert tree[0].startswith(f"scopeloop task tree: 2 tasks ({backend} backend, debug)")
    assert tree[-1].rstrip().endswith(f", called from {script}:4 in receiver(); created at "
                                      f"{script}:9 in main()")
    assert proc.returncode not in (-signal.SIGKILL, -getattr(signal, signum))


@pytest.mark.skipif(not hasattr(signal, "SIGUSR1"), reason="no SIGUSR1 on this platform")
def test_tree_signal_can_be_turned_off(backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL
    monkeypatch.setenv("SCOPELOOP_TREE_SIGNAL", "off")
    loop = scopeloop.new_event_loop(backend, debug=True)
    try:
        assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL
    finally:
        loop.close()
    monkeypatch.delenv("SCOPELOOP_TREE_SIGNAL")
    loop = scopeloop.new_event_loop(backend, debug=True)
    try:
        assert signal.getsignal(signal.SIGUSR1) != signal.SIG_DFL
    finally:
        loop.close()
    # Closing the loop puts the default action back (uvloop would not by itself).
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL


@pytest.mark.skipif(not hasattr(signal, "SIGUSR1"), reason="no SIGUSR1 on this platform")
def test_bad_tree_signal_setting_is_a_clear_error(backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCOPELOOP_TREE_SIGNAL", "SIGNOPE")
    with pytest.raises(ValueError, match="SCOPELOOP_TREE_SIGNAL='SIGNOPE' names no signal"):
        scopeloop.new_event_loop(backend, debug=True)


@pytest.mark.skipif(not hasattr(signal, "SIGUSR2"), reason="no SIGUSR2 on this platform")
def test_print_tree_on_signal_for_any_loop(run: Any) -> None:
    async def main() -> tuple[bool, bool, bool]:
        loop = asyncio.get_running_loop()
        installed = diagnostics.print_tree_on_signal(signal.SIGUSR2)
        # A signal that already has a handler is left alone.
        again = diagnostics.print_tree_on_signal(signal.SIGUSR2)
        return installed, again, loop.remove_signal_handler(signal.SIGUSR2)

    assert run(main) == (True, False, True)


def test_print_tree_on_signal_outside_the_main_thread_does_nothing() -> None:
    loop = AsyncioEventLoop()
    result: list[bool] = []
    try:
        thread = threading.Thread(
            target=lambda: result.append(diagnostics.print_tree_on_signal(signal.SIGTERM, loop=loop)))
        thread.start()
        thread.join()
    finally:
        loop.close()
    assert result == [False]


def test_tree_shows_a_pending_start(run: Any) -> None:
    # A task waiting in TaskGroup.start() for task_status.started() is drawn as that,
    # with the task it started below, not as a task group (diagnostics found the
    # pending start() by the name of a function group.py no longer had).
    async def slow_start(release: asyncio.Event, task_status: Any) -> None:
        await release.wait()
        task_status.started()
        await asyncio.Event().wait()

    async def main() -> tuple[str, str]:
        release = asyncio.Event()
        async with scopeloop.create_task_group() as tg:
            async def caller() -> None:
                await tg.start(slow_start, release, name="starting")
            tg.start_soon(caller, name="caller")
            await scopeloop.wait_all_tasks_blocked()
            during = scopeloop.format_tree()
            release.set()
            await scopeloop.wait_all_tasks_blocked()
            after = scopeloop.format_tree()
            tg.cancel_scope.cancel()
        return during, after

    during, after = (normalise(text).splitlines() for text in run(main))
    caller = next(i for i, line in enumerate(during) if "task 'caller'" in line)
    assert " waiting at group.py:N in TaskGroup.start()" in during[caller]
    assert during[caller + 1].endswith("`- scope ID: start() waiting for task_status.started()")
    assert "task 'starting' waiting at locks.py:N in Event.wait()" in during[caller + 2]
    assert sum("task group with" in line for line in during) == 1  # only the real group
    # Once started, the task is the group's child and the start() is gone.
    assert not any("start() waiting" in line for line in after)
    group = next(i for i, line in enumerate(after) if "task group with" in line)
    assert after[group].endswith("scope ID: task group with 1 task")
    assert "task 'starting' waiting" in after[group + 1]


def test_tree_shows_the_scope_a_task_handle_cancelled(run: Any) -> None:
    async def child(release: asyncio.Event) -> None:
        with scopeloop.CancelScope(shield=True):
            await release.wait()

    async def main() -> str:
        release = asyncio.Event()
        async with scopeloop.create_task_group() as tg:
            handle = tg.start_soon(child, release, name="handled")
            await scopeloop.wait_all_tasks_blocked()
            handle.cancel("not needed")
            tree = scopeloop.format_tree()
            release.set()
        return tree

    tree = normalise(run(main)).splitlines()
    task = next(i for i, line in enumerate(tree) if "task 'handled'" in line)
    # Between the task and its own shielded scope: the scope its handle cancelled.
    assert tree[task + 1].endswith("`- scope ID: the task's handle, cancelled (not needed)")
    assert tree[task + 2].endswith("`- scope ID: shield")
