"""Ctrl+C under ``scopeloop.run()`` (issue 4): real SIGINT to child processes, and
in-process checks of the KeyboardInterrupt and of the SIGINT handler.

The child-process tests start a script, wait for the "ready" line it prints, send
SIGINT and measure the child's CPU time from /proc and its rusage: a program that
waits for shielded cleanup after Ctrl+C must do so at ~0 CPU.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import scopeloop
from scopeloop import CancelScope, create_task_group, sleep_forever, wait_all_tasks_blocked

TIMEOUT_S = 30
MAX_CPU_FRACTION = 0.2


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a running process, from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Outcome:
    returncode: int
    stdout: str
    stderr: str
    cpu_after_signal: float  # CPU seconds the child used after the first SIGINT
    wall_after_signal: float  # seconds from the first SIGINT to its exit
    wall_after_last_signal: float  # seconds from the last SIGINT to its exit

    @property
    def lines(self) -> list[str]:
        return self.stdout.splitlines()


def interrupt(tmp_path: Path, backend: str, source: str, *,
              wait_for: tuple[str, ...] = (), env: dict[str, str] | None = None) -> Outcome:
    """Run ``source`` as a script; after its "ready" line, send SIGINT.

    For each line in ``wait_for``, wait until the script prints it, then send
    another SIGINT.  Returns once the script has exited.
    """
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(source))
    child_env = dict(os.environ, SCOPELOOP_BACKEND=backend, PYTHONUNBUFFERED="1",
                     PYTHONPATH=os.pathsep.join([str(Path(scopeloop.__file__).parent.parent),
                                                 os.environ.get("PYTHONPATH", "")]),
                     **(env or {}))
    child = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=child_env, cwd=tmp_path)
    # A script stuck before printing a line would block readline() forever.
    watchdog = threading.Timer(2 * TIMEOUT_S, child.kill)
    watchdog.start()
    try:
        assert child.stdout is not None and child.stderr is not None
        seen: list[str] = []

        def read_until(marker: str) -> None:
            while True:
                line = child.stdout.readline()  # type: ignore[union-attr]
                if not line:
                    raise AssertionError(f"script exited before printing {marker!r}: "
                                         f"{''.join(seen)}{child.stderr.read()}")  # type: ignore[union-attr]
                seen.append(line)
                if line.strip() == marker:
                    return

        read_until("ready")
        cpu0, t0 = cpu_seconds(child.pid), time.monotonic()
        child.send_signal(signal.SIGINT)
        t_last = t0
        for marker in wait_for:
            read_until(marker)
            t_last = time.monotonic()
            child.send_signal(signal.SIGINT)
        # Reap it ourselves to get its total CPU time (rusage) at exit.
        while True:
            pid, status, usage = os.wait4(child.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() - t0 > TIMEOUT_S:
                raise AssertionError(f"no exit within {TIMEOUT_S}s after SIGINT: {''.join(seen)}")
            time.sleep(0.02)
        end = time.monotonic()
        wall, wall_last = end - t0, end - t_last
        child.returncode = os.waitstatus_to_exitcode(status)
        rest_out, err = child.communicate()
    finally:
        watchdog.cancel()
        if child.returncode is None:
            child.kill()
            child.communicate()
    return Outcome(child.returncode, "".join(seen) + rest_out, err,
                   usage.ru_utime + usage.ru_stime - cpu0, wall, wall_last)


# -- real SIGINT to a child process ------------------------------------------------

GROUP_LOOP = """
    import os
    import sys

    import scopeloop

    async def cleanup():
        try:
            await scopeloop.sleep_forever()
        finally:
            with scopeloop.CancelScope(shield=True):
                await scopeloop.sleep(1)
            print("cleanup done", flush=True)

    async def worker():
        await scopeloop.sleep(0)

    async def main():
        async with scopeloop.create_task_group() as outer:
            outer.start_soon(cleanup)
            rounds = 0
            try:
                while True:
                    async with scopeloop.create_task_group() as tg:
                        tg.start_soon(worker)
                        tg.start_soon(worker)
                    rounds += 1
                    if rounds == 200:
                        print("ready", flush=True)
            finally:
                print("loop stopped", flush=True)

    try:
        scopeloop.run(main)
    except KeyboardInterrupt as exc:
        print(f"caught {type(exc).__name__}", flush=True)
        sys.exit(130)
    sys.exit("run() returned")
"""


def test_loop_recreating_task_groups_stops_on_one_ctrl_c(tmp_path: Path, backend: str) -> None:
    out = interrupt(tmp_path, backend, GROUP_LOOP)
    assert out.returncode == 130, out
    assert out.lines[1:] == ["loop stopped", "cleanup done", "caught KeyboardInterrupt"], out
    # The loop stopped: it does not keep spinning while the cleanup waits 1 s.
    fraction = out.cpu_after_signal / out.wall_after_signal
    print(f"\nCPU after SIGINT: {out.cpu_after_signal:.3f}s over "
          f"{out.wall_after_signal:.2f}s wall ({fraction:.0%})")
    assert out.wall_after_signal >= 1.0
    assert fraction < MAX_CPU_FRACTION, out


UNHANDLED = """
    import scopeloop

    async def child():
        await scopeloop.sleep_forever()

    async def main():
        async with scopeloop.create_task_group() as tg:
            tg.start_soon(child)
            print("ready", flush=True)

    scopeloop.run(main)
"""


def test_unhandled_keyboard_interrupt_exits_like_stock_python(tmp_path: Path,
                                                              backend: str) -> None:
    out = interrupt(tmp_path, backend, UNHANDLED)
    # Python ends with SIGINT itself on an unhandled KeyboardInterrupt (a shell
    # reports 130).
    assert out.returncode in (-signal.SIGINT, 130), out
    assert out.stderr.rstrip().splitlines()[-1] == "KeyboardInterrupt", out.stderr
    # Bare: no exception group, and no chained CancelledError in the report.
    assert "ExceptionGroup" not in out.stderr
    assert "direct cause" not in out.stderr and "During handling" not in out.stderr


CHILD_ERROR_WHILE_UNWINDING = """
    import sys

    import scopeloop

    async def fragile():
        try:
            await scopeloop.sleep_forever()
        except scopeloop.get_cancelled_exc_class():
            raise ValueError("cleanup failed")

    async def main():
        async with scopeloop.create_task_group() as tg:
            tg.start_soon(fragile)
            print("ready", flush=True)

    try:
        scopeloop.run(main)
    except KeyboardInterrupt as exc:
        print(f"caught {type(exc).__name__} grouped={isinstance(exc, BaseExceptionGroup)}",
              flush=True)
        print(f"cause {exc.__cause__!r}", flush=True)
        sys.exit(130)
    sys.exit("run() returned")
"""


def test_keyboard_interrupt_is_bare_when_a_child_fails_while_unwinding(
        tmp_path: Path, backend: str) -> None:
    out = interrupt(tmp_path, backend, CHILD_ERROR_WHILE_UNWINDING)
    assert out.returncode == 130, out
    assert out.lines[1] == "caught KeyboardInterrupt grouped=False", out
    # The error is not lost: it is the KeyboardInterrupt's cause.
    assert out.lines[2].startswith("cause ExceptionGroup("), out
    assert "ValueError('cleanup failed')" in out.lines[2], out


SECOND_SIGINT = """
    import os
    import sys
    import time

    import scopeloop

    async def shielded():
        with scopeloop.CancelScope(shield=True):
            await scopeloop.sleep(30)
        print("shielded sleep finished", flush=True)

    async def main():
        async with scopeloop.create_task_group() as tg:
            tg.start_soon(shielded)
            try:
                print("ready", flush=True)
                await scopeloop.sleep_forever()
            except scopeloop.get_cancelled_exc_class():
                print("unwinding", flush=True)
                if os.environ.get("BUSY"):
                    # Still inside this task's step when the second SIGINT arrives.
                    end = time.monotonic() + 0.5
                    while time.monotonic() < end:
                        pass
                raise

    try:
        scopeloop.run(main)
    except KeyboardInterrupt as exc:
        print(f"caught {type(exc).__name__}", flush=True)
        sys.exit(130)
    sys.exit("run() returned")
"""


@pytest.mark.parametrize("busy", [False, True], ids=["idle", "in-task"])
def test_second_ctrl_c_interrupts_at_once(tmp_path: Path, backend: str, busy: bool) -> None:
    # "in-task": the second SIGINT lands in task code, inside a task group whose
    # shielded child would hold a KeyboardInterrupt raised there for 30 s.
    out = interrupt(tmp_path, backend, SECOND_SIGINT, wait_for=("unwinding",),
                    env={"BUSY": "1"} if busy else {})
    assert out.returncode == 130, out
    assert out.lines[1:] == ["unwinding", "caught KeyboardInterrupt"], out
    # The 30 s shielded sleep was cut short.
    assert out.wall_after_signal < TIMEOUT_S / 3, out


ABANDON = """
    import asyncio
    import sys
    import time

    import scopeloop
    from scopeloop import to_thread

    async def shielded_cleanup():
        try:
            await scopeloop.sleep_forever()
        finally:
            with scopeloop.CancelScope(shield=True):
                print("cleanup started", flush=True)
                await scopeloop.sleep(30)
                print("shielded cleanup ran", flush=True)

    async def threaded():
        try:
            await to_thread.run_sync(time.sleep, 30)
            print("thread returned", flush=True)
        finally:
            with scopeloop.CancelScope(shield=True):
                await scopeloop.sleep(0)
                print("thread cleanup ran", flush=True)

    async def orphan():
        # Not in any group: only close() cancels it, and then waits for it.
        try:
            await scopeloop.sleep_forever()
        except asyncio.CancelledError:
            with scopeloop.CancelScope(shield=True):
                print("orphan cleanup started", flush=True)
                await scopeloop.sleep(30)
                print("orphan cleanup ran", flush=True)

    async def main():
        if sys.argv[1] == "orphan":
            keep = asyncio.create_task(orphan())
            await scopeloop.wait_all_tasks_blocked()
            print("ready", flush=True)
            await scopeloop.sleep_forever()
        async with scopeloop.create_task_group() as tg:
            tg.start_soon(shielded_cleanup)
            if sys.argv[1] == "thread":
                tg.start_soon(threaded)
            await scopeloop.wait_all_tasks_blocked()
            print("ready", flush=True)

    scopeloop.run(main)
"""


@pytest.mark.parametrize("case", ["shield", "thread", "orphan"])
def test_second_ctrl_c_abandons_every_wait(tmp_path: Path, backend: str, case: str) -> None:
    # After the first Ctrl+C the program waits (30 s) in shielded cleanup, for a
    # thread, or (orphan) in close(), which waits for leftover tasks.  The second one
    # ends it at once: nothing that waits runs any more, and the KeyboardInterrupt is
    # unhandled, so the process dies of SIGINT as stock Python does.
    script = ABANDON.replace("scopeloop.run(main)", f"sys.argv[1:] = [{case!r}]\n"
                             "    scopeloop.run(main)")
    marker = "orphan cleanup started" if case == "orphan" else "cleanup started"
    out = interrupt(tmp_path, backend, script, wait_for=(marker,))
    assert out.returncode == -signal.SIGINT, out
    assert out.wall_after_last_signal < 5, out
    assert out.lines == ["ready", marker], out
    last = out.stderr.rstrip().splitlines()
    assert last[-1] == "KeyboardInterrupt", out.stderr
    # Nothing else on stderr: no "Task was destroyed but it is pending!", no
    # "Exception ignored" from a coroutine closed at exit.
    assert "Task was destroyed" not in out.stderr and "ignored" not in out.stderr, out.stderr
    assert "ExceptionGroup" not in out.stderr, out.stderr


# -- in process: the signal is raised by the program itself ------------------------


@pytest.fixture
def default_sigint() -> Iterator[None]:
    """These tests need Python's default SIGINT handler, and leave it in place."""
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    yield
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def ctrl_c() -> None:
    """Press Ctrl+C, once it is certain that run()'s own handler will see it."""
    handler = signal.getsignal(signal.SIGINT)
    assert handler is not signal.default_int_handler, "run() did not install its handler"
    signal.raise_signal(signal.SIGINT)


def run_interrupted(backend: str, main: Callable[[], Any]) -> KeyboardInterrupt:
    with pytest.raises(KeyboardInterrupt) as info:
        scopeloop.run(main, backend=backend)
    return info.value


def test_previous_sigint_handler_is_restored(backend: str, default_sigint: None) -> None:
    inside: list[object] = []

    async def main() -> None:
        inside.append(signal.getsignal(signal.SIGINT))

    scopeloop.run(main, backend=backend)
    assert inside[0] is not signal.default_int_handler and callable(inside[0])
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler

    async def fails() -> None:
        raise ValueError("boom")

    with pytest.raises(ValueError):
        scopeloop.run(fails, backend=backend)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler

    async def interrupted() -> None:
        ctrl_c()
        await sleep_forever()

    run_interrupted(backend, interrupted)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler

    # A handler the program installed itself is left alone, during and after.
    def mine(signum: int, frame: object) -> None:
        pass

    signal.signal(signal.SIGINT, mine)
    try:
        inside.clear()
        scopeloop.run(main, backend=backend)
        assert inside == [mine]
        assert signal.getsignal(signal.SIGINT) is mine
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.mark.skipif(not hasattr(signal, "SIGUSR1"), reason="no SIGUSR1 on this platform")
def test_loop_signal_handlers_keep_working_beside_ctrl_c_handling(
        backend: str, default_sigint: None) -> None:
    # run() gives SIGINT a wakeup fd; it must not take the one the loop's own
    # add_signal_handler() relies on, whether that was set before run() or during,
    # nor leave a wakeup fd behind.
    fd_before = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(fd_before)
    handlers_before = {signum: signal.getsignal(signum)
                       for signum in (signal.SIGUSR1, signal.SIGUSR2)}
    try:
        run_signal_handlers(backend)
    finally:
        for signum, handler in handlers_before.items():
            signal.signal(signum, handler)
    assert signal.set_wakeup_fd(fd_before) == fd_before


def run_signal_handlers(backend: str) -> None:
    async def signalled() -> None:
        loop = asyncio.get_running_loop()
        got = asyncio.Event()
        loop.add_signal_handler(signal.SIGUSR1, got.set)
        try:
            signal.pthread_kill(threading.get_ident(), signal.SIGUSR1)
            async with asyncio.timeout(TIMEOUT_S):
                await got.wait()
        finally:
            loop.remove_signal_handler(signal.SIGUSR1)

    with scopeloop.Runner(backend=backend) as runner:
        runner.run(signalled)  # handler added while run() holds SIGINT
        loop = runner.get_loop()
        handled = asyncio.Event()
        loop.add_signal_handler(signal.SIGUSR2, handled.set)  # added before run()
        try:
            async def signalled_before() -> None:
                signal.pthread_kill(threading.get_ident(), signal.SIGUSR2)
                async with asyncio.timeout(TIMEOUT_S):
                    await handled.wait()

            runner.run(signalled_before)
        finally:
            loop.remove_signal_handler(signal.SIGUSR2)
        runner.run(signalled)
    assert handled.is_set()


SIGINT_IN_A_WORKER_THREAD = """
    import asyncio, json, os, signal, sys, threading, time
    import scopeloop

    # Syscall numbers of the calls an event loop sleeps in (poll, select,
    # epoll_wait, pselect6, ppoll, epoll_pwait, epoll_pwait2).
    POLL_SYSCALLS = {"x86_64": {7, 23, 232, 270, 271, 281, 441},
                     "aarch64": {22, 72, 73, 441}}[os.uname().machine]
    main_thread = threading.get_native_id()
    cancelled = threading.Event()
    finished = threading.Event()
    seen = {}

    def main_thread_asleep_in_poll(timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with open(f"/proc/self/task/{main_thread}/syscall") as f:
                first = f.read().split()[0]
            if first.isdigit() and int(first) in POLL_SYSCALLS:
                return True
            time.sleep(0.001)
        return False

    def worker():
        try:
            seen["main asleep"] = main_thread_asleep_in_poll(10)
            signal.pthread_kill(threading.get_ident(), signal.SIGINT)
            seen["woke in time"] = cancelled.wait(10)
        finally:
            finished.set()

    async def main():
        try:
            await scopeloop.to_thread.run_sync(worker, abandon_on_cancel=True)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    try:
        scopeloop.run(main)
    except KeyboardInterrupt:
        seen["KeyboardInterrupt"] = True
    seen["wakeup fd left"] = signal.set_wakeup_fd(-1)
    seen["worker finished"] = finished.wait(10)
    print(json.dumps(seen))
"""


@pytest.mark.skipif(os.uname().machine not in ("x86_64", "aarch64")
                    or not os.path.exists("/proc/self/task"),
                    reason="reads the main thread's syscall from Linux's /proc")
def test_ctrl_c_delivered_to_a_worker_thread_wakes_the_sleeping_loop(
        tmp_path: Path, backend: str) -> None:
    # Linux delivers a process-wide SIGINT to any thread that does not block it.
    # When a worker thread gets it while the loop sleeps with no timer due, the
    # loop must still wake up at once and cancel the program.  (A fresh process:
    # a wakeup fd or signal state left by earlier loops could do the waking.)
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(SIGINT_IN_A_WORKER_THREAD))
    env = dict(os.environ, SCOPELOOP_BACKEND=backend,
               PYTHONPATH=os.pathsep.join([str(Path(scopeloop.__file__).parent.parent),
                                           os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          env=env, timeout=2 * TIMEOUT_S)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"main asleep": True, "woke in time": True,
                                       "KeyboardInterrupt": True, "wakeup fd left": -1,
                                       "worker finished": True}


def test_ctrl_c_cancels_root_scope_and_waits_for_shielded_cleanup(
        backend: str, default_sigint: None) -> None:
    log: list[object] = []

    async def worker() -> None:
        try:
            await sleep_forever()
        except asyncio.CancelledError as exc:
            log.append(("worker cancelled", "KeyboardInterrupt" in str(exc)))
            with CancelScope(shield=True):
                await asyncio.sleep(0.01)  # shielded cleanup that really waits
                log.append("cleanup done")
            raise

    async def main() -> None:
        async with create_task_group() as tg:
            tg.start_soon(worker)
            await wait_all_tasks_blocked()
            ctrl_c()
            try:
                await sleep_forever()
            finally:
                me = asyncio.current_task()
                assert me is not None
                log.append(("main cancelling()", me.cancelling()))

    exc = run_interrupted(backend, main)
    assert type(exc) is KeyboardInterrupt
    assert exc.__cause__ is None
    # (The two tasks are cancelled in the same loop iteration, in either order.)
    assert sorted(map(str, log[:2])) == ["('main cancelling()', 0)", "('worker cancelled', True)"]
    assert log[2:] == ["cleanup done"]


def test_ctrl_c_stops_loop_recreating_task_groups(backend: str, default_sigint: None) -> None:
    rounds = 0

    async def worker() -> None:
        await asyncio.sleep(0)

    async def main() -> None:
        nonlocal rounds
        while True:
            async with create_task_group() as tg:
                tg.start_soon(worker)
                tg.start_soon(worker)
            rounds += 1
            if rounds == 50:
                ctrl_c()

    exc = run_interrupted(backend, main)
    assert type(exc) is KeyboardInterrupt
    assert rounds == 50  # stopped in the round in which Ctrl+C was pressed


def test_except_keyboard_interrupt_works_when_a_child_fails(
        backend: str, default_sigint: None) -> None:
    async def fragile() -> None:
        try:
            await sleep_forever()
        except asyncio.CancelledError:
            raise ValueError("cleanup failed") from None

    async def main() -> None:
        async with create_task_group() as tg:
            tg.start_soon(fragile)
            await wait_all_tasks_blocked()
            ctrl_c()

    caught: list[BaseException] = []
    try:
        scopeloop.run(main, backend=backend)
    except KeyboardInterrupt as exc:
        caught.append(exc)
    [exc] = caught
    assert type(exc) is KeyboardInterrupt
    assert isinstance(exc.__cause__, ExceptionGroup)
    assert [type(e) for e in exc.__cause__.exceptions] == [ValueError]


def test_main_that_handles_the_cancellation_still_ends_in_keyboard_interrupt(
        backend: str, default_sigint: None) -> None:
    async def main() -> str:
        try:
            ctrl_c()
            await sleep_forever()
        except asyncio.CancelledError:
            return "swallowed"
        return "not reached"

    assert type(run_interrupted(backend, main)) is KeyboardInterrupt


def test_second_ctrl_c_closes_tasks_where_they_stand(backend: str, default_sigint: None) -> None:
    log: list[str] = []

    async def worker() -> None:
        try:
            await sleep_forever()
        finally:
            log.append("worker finally")
            with CancelScope(shield=True):
                # The second Ctrl+C, as soon as this task waits.
                asyncio.get_running_loop().call_soon(ctrl_c)
                await asyncio.sleep(30)
                log.append("worker cleanup done")  # would have to wait: never runs
            log.append("after the shield")  # the coroutine is closed at the await

    async def main() -> None:
        async with create_task_group() as tg:
            tg.start_soon(worker)
            await wait_all_tasks_blocked()
            ctrl_c()
            await sleep_forever()

    start = time.monotonic()
    with scopeloop.Runner(backend=backend) as runner:
        loop = runner.get_loop()
        with pytest.raises(KeyboardInterrupt):
            runner.run(main)
        assert loop.is_closed()
        with pytest.raises(RuntimeError, match="abandoned by a second Ctrl"):
            runner.run(main)
    assert time.monotonic() - start < 5
    assert log == ["worker finally"]
