"""One test per CPython internal listed in scopeloop/_cpython.py (numbers match).

Each fails loudly when the internal changes shape on the interpreter running it.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import types
from pathlib import Path
from typing import Any

import _asyncio
import pytest

import scopeloop
from scopeloop import _cpython

ROOT = Path(__file__).resolve().parent.parent


def _on_stock_loop(main: Any) -> Any:
    with asyncio.Runner(loop_factory=asyncio.SelectorEventLoop) as runner:
        return runner.run(main())


def test_1_3_task_state_attributes() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        task = asyncio.ensure_future(fut)  # (a Future: the Task below waits on it)

        async def waits() -> None:
            await fut

        waiter = asyncio.create_task(waits())
        assert waiter._fut_waiter is None and waiter._must_cancel is False  # type: ignore[attr-defined]
        await asyncio.sleep(0)
        assert waiter._fut_waiter is fut and waiter._loop is loop  # type: ignore[attr-defined]
        fut.set_result(None)
        await asyncio.sleep(0)
        me = asyncio.current_task()
        assert me is not None
        me.cancel()
        assert me._must_cancel is True  # type: ignore[attr-defined]
        me.uncancel()
        if not _cpython.UNCANCEL_CLEARS_PENDING:
            with pytest.raises(asyncio.CancelledError):
                await asyncio.sleep(0)
        await waiter
        del task

    _on_stock_loop(main)


def test_4_source_traceback_in_debug_mode() -> None:
    loop = asyncio.SelectorEventLoop()
    loop.set_debug(True)
    try:
        handle = loop.call_soon(print)
        assert isinstance(handle._source_traceback, list)  # type: ignore[attr-defined]
        handle.cancel()
    finally:
        loop.close()


def test_5_uncancel_to_zero_clears_a_pending_cancel_as_the_constant_says() -> None:
    async def main() -> bool:
        me = asyncio.current_task()
        assert me is not None
        me.cancel()
        me.uncancel()
        cleared = not me._must_cancel  # type: ignore[attr-defined]
        if not cleared:
            with pytest.raises(asyncio.CancelledError):
                await asyncio.sleep(0)
        return cleared

    assert _on_stock_loop(main) is _cpython.UNCANCEL_CLEARS_PENDING


def test_6_running_task_of_a_loop() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        assert _cpython.task_of_loop(loop) is asyncio.current_task()
        if sys.version_info < (3, 12):
            assert _cpython.CURRENT_TASKS is asyncio.tasks._current_tasks  # type: ignore[attr-defined]
            assert _cpython.CURRENT_TASKS.get(loop) is asyncio.current_task()
        else:
            assert _cpython.task_of_loop is _asyncio.current_task

    _on_stock_loop(main)


def test_7_coroutine_and_frame_introspection() -> None:
    async def inner(fut: asyncio.Future[None]) -> None:
        await fut

    async def outer(fut: asyncio.Future[None]) -> None:
        await inner(fut)

    async def main() -> None:
        fut = asyncio.get_running_loop().create_future()
        coro = outer(fut)
        assert _cpython.not_started(coro)
        task = asyncio.create_task(coro)
        await asyncio.sleep(0)
        assert not _cpython.not_started(coro)
        innermost = _cpython.innermost_coroutine(coro)
        assert innermost.cr_code is inner.__code__
        frames = _cpython.await_frames(coro)
        assert [f.f_code.co_qualname for f in frames][:2] == [
            outer.__qualname__, inner.__qualname__]
        assert frames[1].f_locals["fut"] is fut and frames[1].f_back is None
        assert sys._getframe().f_code is main.__code__
        fut.set_result(None)
        await task

    _on_stock_loop(main)


def test_8_stdlib_group_exit_wait_is_recognised_by_its_future() -> None:
    assert _cpython._HAS_COMPLETED_FUT, "asyncio.TaskGroup has no _on_completed_fut"
    assert _cpython._TASKGROUP_CODES  # the fallback found TaskGroup's own coroutines

    async def main() -> None:
        release = asyncio.Event()
        seen: list[bool] = []

        async def child() -> None:
            await release.wait()

        async def host() -> None:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(child())

        host_task = asyncio.create_task(host())
        for _ in range(3):
            await asyncio.sleep(0)
        seen.append(_cpython.waits_for_stdlib_group_children(host_task))
        seen.append(_cpython.waits_for_stdlib_group_children(asyncio.current_task()))  # type: ignore[arg-type]
        release.set()
        await host_task
        assert seen == [True, False]

    _on_stock_loop(main)


def test_9_task_step_callback_type() -> None:
    step = _cpython.task_step_type()
    scheduled: list[Any] = []

    class Recording(asyncio.SelectorEventLoop):
        def call_soon(self, callback: Any, *args: Any, context: Any = None) -> Any:
            scheduled.append(callback)
            return super().call_soon(callback, *args, context=context)

    async def main() -> None:
        task = asyncio.create_task(asyncio.sleep(0))
        assert any(type(cb) is step and cb.__self__ is task for cb in scheduled)
        await task

    with asyncio.Runner(loop_factory=Recording) as runner:
        runner.run(main())


def test_10_get_running_loop_or_none() -> None:
    assert _cpython.get_running_loop_or_none() is None

    async def main() -> None:
        assert _cpython.get_running_loop_or_none() is asyncio.get_running_loop()

    _on_stock_loop(main)


def test_11_asyncio_files() -> None:
    assert Path(_cpython.ASYNCIO_TASKS) == Path(asyncio.tasks.__file__)
    assert Path(_cpython.BASE_EVENTS) == Path(asyncio.base_events.__file__)
    seen: list[str] = []

    class Loop(asyncio.SelectorEventLoop):
        def call_at(self, when: float, callback: Any, *args: Any, context: Any = None) -> Any:
            seen.append(sys._getframe(1).f_code.co_filename)
            return super().call_at(when, callback, *args, context=context)

    loop = Loop()
    try:
        loop.call_later(10, print).cancel()
    finally:
        loop.close()
    assert seen == [_cpython.BASE_EVENTS]  # call_later goes through call_at


@pytest.mark.skipif(sys.version_info < (3, 12), reason="eager task factories exist from 3.12")
def test_12_eager_task_factory_has_the_stdlib_code() -> None:
    assert scopeloop.eager_task_factory.__code__ is asyncio.eager_task_factory.__code__  # type: ignore[attr-defined]


def test_13_policy_base() -> None:
    assert _cpython.POLICY_BASE is not None and _cpython.set_event_loop_policy is not None
    assert issubclass(scopeloop.EventLoopPolicy, _cpython.POLICY_BASE)
    if sys.version_info < (3, 14):
        assert _cpython.POLICY_BASE is asyncio.DefaultEventLoopPolicy


def test_14_task_is_the_c_task() -> None:
    assert asyncio.Task is _asyncio.Task
    assert isinstance(asyncio.Task.__dict__.get("_fut_waiter"), types.GetSetDescriptorType)


# -- 13: without the policy API (what 3.16 will be) ------------------------------------

_WITHOUT_POLICIES = """
import asyncio, asyncio.events, sys
asyncio.events.get_event_loop_policy()  # asyncio's own default, made while it can be
platform = sys.modules["asyncio.windows_events" if sys.platform == "win32" else "asyncio.unix_events"]
# (asyncio.events keeps its own: the stdlib's internals use them, as 3.14's use
# their private aliases.)
for module in (asyncio, platform):
    for name in ("AbstractEventLoopPolicy", "BaseDefaultEventLoopPolicy",
                 "DefaultEventLoopPolicy", "_DefaultEventLoopPolicy", "_AbstractEventLoopPolicy",
                 "get_event_loop_policy", "set_event_loop_policy"):
        if hasattr(module, name):
            delattr(module, name)
assert not hasattr(asyncio, "get_event_loop_policy")
"""


def _without_policies(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    program = _WITHOUT_POLICIES + textwrap.dedent(code)
    return subprocess.run([sys.executable, "-c", program, *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})


def test_without_the_policy_api_run_and_loop_factory_work(backend: str) -> None:
    result = _without_policies(f"""
        import asyncio, scopeloop
        async def main():
            with scopeloop.move_on_after(0.01) as scope:
                await asyncio.sleep(10)
            return scope.cancelled_caught, type(asyncio.get_running_loop()).__name__
        print(scopeloop.run(main, backend={backend!r}))
        with asyncio.Runner(loop_factory=lambda: scopeloop.new_event_loop({backend!r})) as r:
            print(r.run(main()))
        if sys.version_info >= (3, 12):
            print(asyncio.run(main(), loop_factory=scopeloop.new_event_loop))
        try:
            scopeloop.EventLoopPolicy()
        except RuntimeError as exc:
            print("policy:", exc)
        """)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert all(line.startswith("(True, ") for line in lines[:-1])
    assert len(lines) == (4 if sys.version_info >= (3, 12) else 3)
    assert lines[-1].startswith("policy: ")
    assert "scopeloop.run(main)" in lines[-1]
    assert "loop_factory=scopeloop.new_event_loop" in lines[-1]


def test_without_the_policy_api_python_m_scopeloop_works(tmp_path: Path, backend: str) -> None:
    script = tmp_path / "app.py"
    script.write_text(textwrap.dedent("""
        import asyncio
        async def main():
            return type(asyncio.get_running_loop()).__name__
        print(asyncio.run(main()))
        loop = asyncio.new_event_loop()
        print(type(loop).__name__)
        loop.close()
        """))
    result = _without_policies("""
        import runpy
        sys.argv[1:] = ["--backend", sys.argv[1], sys.argv[2]]
        runpy.run_module("scopeloop", run_name="__main__", alter_sys=True)
        """, backend, str(script))
    assert result.returncode == 0, result.stderr
    expected = "UVLoopEventLoop" if backend == "uvloop" else "AsyncioEventLoop"
    assert result.stdout.split() == [expected, expected]


def test_without_the_policy_api_the_pytest_plugin_works(tmp_path: Path, backend: str) -> None:
    (tmp_path / "test_it.py").write_text(textwrap.dedent("""
        import asyncio, pytest, scopeloop
        @pytest.mark.asyncio
        async def test_scope():
            assert asyncio.get_running_loop()._is_scopeloop
            with scopeloop.move_on_after(0.01) as scope:
                await asyncio.sleep(10)
            assert scope.cancelled_caught
        """))
    # pytest-asyncio itself still calls the policy functions; give it what 3.16's
    # port of it would use (asyncio.events' own), so that only scopeloop is tested.
    result = _without_policies("""
        import pytest_asyncio.plugin as pa
        pa._get_event_loop_policy = asyncio.events.get_event_loop_policy
        pa._set_event_loop_policy = asyncio.events.set_event_loop_policy
        import pytest
        from importlib.metadata import entry_points
        # Installed, the plugin is loaded by its pytest11 entry point; else name it.
        load = [] if entry_points(group="pytest11", name="scopeloop") else ["-p", "scopeloop.pytest_plugin"]
        sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", *load,
                              "--scopeloop-backend", sys.argv[1], sys.argv[2]]))
        """, backend, str(tmp_path / "test_it.py"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout


def test_15_log_destroy_pending_silences_a_destroyed_pending_task() -> None:
    import gc

    logged: list[str] = []

    async def pending() -> None:
        await asyncio.get_running_loop().create_future()

    def destroy_pending_task(quietly: bool) -> None:
        loop = asyncio.new_event_loop()
        loop.set_exception_handler(lambda loop, context: logged.append(context["message"]))
        try:
            task = loop.create_task(pending())
            loop.run_until_complete(asyncio.sleep(0))
            assert hasattr(task, "_log_destroy_pending")
            if quietly:
                _cpython.abandon_quietly(task)
            task.get_coro().close()  # type: ignore[union-attr]
            del task
            gc.collect()
        finally:
            loop.close()

    destroy_pending_task(quietly=True)
    assert logged == []
    destroy_pending_task(quietly=False)  # the control: without it, the log line comes
    assert any("destroyed but it is pending" in message for message in logged), logged
