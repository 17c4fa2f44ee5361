"""Scopes next to stock asyncio: timeout, TaskGroup, wait_for, shield, native cancel.

Each pairing is tested in both nestings.  ``cancelling()`` is checked at every step:
it must count native requests only (DESIGN §3.2, §4.1), and where no scope is
involved the result must be exactly what stock asyncio gives (DESIGN §4.5).
"""

from __future__ import annotations

import asyncio
import math
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest

import scopeloop
from scopeloop import CancelScope

CancelledError = asyncio.CancelledError


def current() -> asyncio.Task[Any]:
    task = asyncio.current_task()
    assert task is not None
    return task


def cancelling() -> int:
    return current().cancelling()


async def blocked_forever() -> None:
    await asyncio.get_running_loop().create_future()


def run_on_stock(main: Callable[[], Any]) -> Any:
    """Run ``main`` on the stdlib's own loop and Task (the reference behaviour)."""
    with asyncio.Runner(loop_factory=asyncio.SelectorEventLoop) as runner:
        loop = runner.get_loop()
        assert not getattr(loop, "_is_scopeloop", False)
        return runner.run(main())


# -- asyncio.timeout ------------------------------------------------------------------


def test_timeout_inside_scope_expires(run):
    async def main():
        with CancelScope() as scope:
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.01) as timeout:
                    await asyncio.sleep(1000)
            assert timeout.expired()
            assert cancelling() == 0
            await asyncio.sleep(0)
        assert not scope.cancel_called and not scope.cancelled_caught
        assert cancelling() == 0

    run(main)


def test_scope_cancelled_inside_timeout_inside_scope(run):
    async def main():
        with CancelScope() as scope:
            async with asyncio.timeout(1000) as timeout:
                scope.cancel()
                assert cancelling() == 0
                await asyncio.sleep(0)
                pytest.fail("not reached")
        assert scope.cancelled_caught and not timeout.expired()
        assert cancelling() == 0
        await asyncio.sleep(0)

    run(main)


def test_scope_cancelled_from_another_task_inside_timeout(run):
    async def victim(scope: CancelScope, ready: asyncio.Event):
        with scope:
            async with asyncio.timeout(1000) as timeout:
                ready.set()
                await asyncio.sleep(1000)
        assert cancelling() == 0
        return timeout

    async def main():
        scope, ready = CancelScope(), asyncio.Event()
        task = asyncio.create_task(victim(scope, ready))
        await ready.wait()
        scope.cancel()
        timeout = await task
        assert scope.cancelled_caught and not timeout.expired()
        assert task.cancelling() == 0

    run(main)


@pytest.mark.parametrize("shield", [False, True])
def test_timeout_around_scope_expires(run, shield):
    async def main():
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.01):
                with CancelScope(shield=shield) as scope:
                    await asyncio.sleep(1000)   # native cancel passes any scope and shield
        assert not scope.cancel_called and not scope.cancelled_caught
        assert cancelling() == 0
        await asyncio.sleep(0)

    run(main)


def test_scope_cancelled_inside_timeout(run):
    async def main():
        async with asyncio.timeout(1000) as timeout:
            with CancelScope() as scope:
                scope.cancel()
                await asyncio.sleep(0)
            assert cancelling() == 0
            await asyncio.sleep(0)
        assert scope.cancelled_caught and not timeout.expired()
        assert cancelling() == 0

    run(main)


def overdue(when: float) -> None:
    """Hold the loop (blocking) until ``when`` has passed by a margin.

    Timers due by then all fire in the loop's next iteration, in the order of their
    due times, whatever rounding the backend applies (uvloop keeps milliseconds).
    """
    time.sleep(max(0.0, when - asyncio.get_running_loop().time()) + 0.02)


def test_timeout_and_scope_deadline_in_the_same_iteration_through_deadlines(run):
    """Both timers are due at the same loop time and fire in one iteration.

    Exactly one of them reports: a TimeoutError (the scope did not catch), or the
    scope catches (no TimeoutError).  Nothing is left behind either way.
    """
    async def main():
        loop = asyncio.get_running_loop()
        for nesting in ("timeout_outside", "scope_outside"):
            when = loop.time() + 0.01
            timed_out = False
            try:
                if nesting == "timeout_outside":
                    async with asyncio.timeout_at(when) as timeout:
                        with CancelScope(deadline=when) as scope:
                            overdue(when)
                            await asyncio.sleep(1000)
                else:
                    with CancelScope(deadline=when) as scope:
                        async with asyncio.timeout_at(when) as timeout:
                            overdue(when)
                            await asyncio.sleep(1000)
            except TimeoutError:
                timed_out = True
            assert timeout.expired() and scope.cancel_called
            assert timed_out != scope.cancelled_caught
            if nesting == "timeout_outside":
                assert timed_out     # the outer one wins
            assert cancelling() == 0
            await asyncio.sleep(0)
            assert cancelling() == 0

    run(main)


@pytest.mark.parametrize("first", ["timeout", "scope"])
@pytest.mark.parametrize("nesting", ["timeout_outside", "scope_outside"])
def test_timeout_and_scope_expire_in_the_same_iteration(run, first, nesting):
    """Both fire in one loop iteration, in a chosen order (the second is due 5 ms
    after the first; the loop is held until both are overdue).

    An outer asyncio.timeout always reports TimeoutError (as with nested stock
    timeouts).  An outer scope catches when its cancellation reached the task
    first, even though the inner asyncio.timeout turned it into TimeoutError;
    when the timeout's came first, its TimeoutError passes the scope, exactly as
    if it had fired one iteration earlier.  Nothing is left behind in any case.
    """
    async def main():
        loop = asyncio.get_running_loop()
        when = loop.time() + 0.01
        then = when + 0.005

        async def body(timeout: asyncio.Timeout, scope: CancelScope) -> None:
            if first == "timeout":
                timeout.reschedule(when)
                scope.deadline = then
            else:
                scope.deadline = when
                timeout.reschedule(then)
            overdue(then)
            await asyncio.sleep(1000)

        timed_out = False
        try:
            if nesting == "timeout_outside":
                async with asyncio.timeout(None) as timeout:
                    with CancelScope() as scope:
                        await body(timeout, scope)
            else:
                with CancelScope() as scope:
                    async with asyncio.timeout(None) as timeout:
                        await body(timeout, scope)
        except TimeoutError:
            timed_out = True
        scope_wins = nesting == "scope_outside" and first == "scope"
        assert timed_out == (not scope_wins)
        assert scope.cancelled_caught == scope_wins
        assert timeout.expired() and scope.cancel_called
        assert cancelling() == 0
        await asyncio.sleep(0)       # withdrawal: no pending interrupt is left
        await asyncio.sleep(0.001)
        assert cancelling() == 0

    run(main)


# -- asyncio.TaskGroup ----------------------------------------------------------------


@pytest.mark.parametrize("canceller", ["host", "other_task"])
def test_stock_taskgroup_inside_cancelled_scope(run, canceller):
    async def child(log: list[str]):
        try:
            await blocked_forever()
        except CancelledError:
            log.append(f"child cancelled, cancelling={cancelling()}")
            raise

    async def host(scope: CancelScope, ready: asyncio.Event, log: list[str]):
        with scope:
            async with asyncio.TaskGroup() as group:
                group.create_task(child(log))
                group.create_task(child(log))
                await asyncio.sleep(0)
                if canceller == "host":
                    scope.cancel()
                ready.set()
                await asyncio.sleep(1000)
            pytest.fail("not reached")
        log.append(f"host after scope, cancelling={cancelling()}")

    async def main():
        scope, ready, log = CancelScope(), asyncio.Event(), []
        task = asyncio.create_task(host(scope, ready, log))
        await ready.wait()
        if canceller == "other_task":
            scope.cancel()
        await task
        assert scope.cancelled_caught
        # The stock group cancels its children natively (their own count is 1).
        assert log == ["child cancelled, cancelling=1"] * 2 + ["host after scope, cancelling=0"]
        assert task.cancelling() == 0

    run(main)


def test_stock_taskgroup_error_passes_through_scope(run):
    async def fail():
        await asyncio.sleep(0)
        raise ValueError("boom")

    async def main():
        with CancelScope() as scope:
            with pytest.raises(ExceptionGroup) as info:
                async with asyncio.TaskGroup() as group:
                    group.create_task(fail())
                    await asyncio.sleep(1000)
            assert [type(e) for e in info.value.exceptions] == [ValueError]
            assert cancelling() == 0
        assert not scope.cancel_called
        assert cancelling() == 0

    run(main)


@pytest.mark.parametrize("host_scope", ["plain", "shield", "cancelled_shield"])
def test_stock_taskgroup_around_scopes_child_failure_cancels_host(run, host_scope):
    """A failing child cancels the host natively; the host's scopes never swallow it."""
    async def fail(ready: asyncio.Event):
        await ready.wait()
        raise ValueError("boom")

    async def main():
        ready = asyncio.Event()
        with pytest.raises(ExceptionGroup):
            async with asyncio.TaskGroup() as group:
                group.create_task(fail(ready))
                with CancelScope() as outer:
                    if host_scope == "cancelled_shield":
                        outer.cancel()
                    with CancelScope(shield=host_scope != "plain") as inner:
                        ready.set()
                        try:
                            await asyncio.sleep(1000)
                        except CancelledError:
                            assert cancelling() == 1   # the group's native request
                            raise
                pytest.fail("not reached")
        assert not inner.cancelled_caught and not outer.cancelled_caught
        assert cancelling() == 0
        await asyncio.sleep(0)

    run(main)


def test_scopes_inside_stock_taskgroup_children(run):
    async def child(n: int) -> int:
        with CancelScope() as scope:
            scope.cancel()
            await asyncio.sleep(0)
        assert scope.cancelled_caught and cancelling() == 0
        with scopeloop.move_on_after(0.001) as timed:
            await asyncio.sleep(1000)
        assert timed.cancelled_caught and cancelling() == 0
        return n

    async def main():
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(child(n)) for n in range(3)]
            with CancelScope() as scope:
                scope.cancel()
                await asyncio.sleep(0)
            assert scope.cancelled_caught
        assert [t.result() for t in tasks] == [0, 1, 2]
        assert all(t.cancelling() == 0 for t in tasks)
        assert cancelling() == 0

    run(main)


def test_stock_taskgroup_around_scope_host_cancelled_natively(run):
    async def host(ready: asyncio.Event, log: list[str]):
        async with asyncio.TaskGroup() as group:
            group.create_task(blocked_forever())
            with CancelScope() as scope:
                scope.cancel()               # the scope is cancelled too ...
                ready.set()
                with CancelScope(shield=True):
                    await asyncio.sleep(1000)   # ... the native cancel comes through
            log.append("not reached")
        log.append("not reached")

    async def main():
        ready, log = asyncio.Event(), []
        task = asyncio.create_task(host(ready, log))
        await ready.wait()
        task.cancel()
        with pytest.raises(CancelledError):
            await task
        assert task.cancelled() and task.cancelling() == 1
        assert log == []

    run(main)


# -- asyncio.wait_for -------------------------------------------------------------------


def test_wait_for_inside_scope(run):
    async def main():
        with CancelScope() as scope:
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(asyncio.sleep(1000), 0.01)
            assert cancelling() == 0
            assert await asyncio.wait_for(asyncio.sleep(0, "ok"), 1000) == "ok"
        assert not scope.cancel_called
        assert cancelling() == 0

    run(main)


def test_scope_cancelled_while_in_wait_for(run):
    async def inner(log: list[str]):
        try:
            await asyncio.sleep(1000)
        except CancelledError:
            log.append("inner cancelled")
            raise

    async def victim(scope: CancelScope, ready: asyncio.Event, log: list[str]):
        with scope:
            ready.set()
            await asyncio.wait_for(inner(log), 1000)
        log.append(f"after scope, cancelling={cancelling()}")

    async def main():
        scope, ready, log = CancelScope(), asyncio.Event(), []
        task = asyncio.create_task(victim(scope, ready, log))
        await ready.wait()
        await asyncio.sleep(0)
        scope.cancel()
        await task
        assert scope.cancelled_caught
        assert log == ["inner cancelled", "after scope, cancelling=0"]
        assert task.cancelling() == 0

    run(main)


def test_wait_for_around_scopes(run):
    async def self_cancelling():
        with CancelScope() as scope:
            scope.cancel()
            await asyncio.sleep(0)
        assert cancelling() == 0
        return scope.cancelled_caught

    async def slow_in_scope(shield: bool):
        with CancelScope(shield=shield) as scope:
            await asyncio.sleep(1000)
        return scope

    async def main():
        assert await asyncio.wait_for(self_cancelling(), 1000) is True
        for shield in (False, True):
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(slow_in_scope(shield), 0.01)
            assert cancelling() == 0
        await asyncio.sleep(0)

    run(main)


# -- asyncio.shield -------------------------------------------------------------------


def test_asyncio_shield_inside_scope(run):
    async def work(release: asyncio.Event):
        await release.wait()
        return "work done"

    async def main():
        release = asyncio.Event()
        inner = asyncio.create_task(work(release))
        with CancelScope() as scope:
            await asyncio.sleep(0)
            asyncio.get_running_loop().call_soon(scope.cancel)
            await asyncio.shield(inner)
            pytest.fail("not reached")
        assert scope.cancelled_caught and cancelling() == 0
        assert not inner.done()          # the shielded work is untouched ...
        release.set()
        assert await inner == "work done"  # ... and finishes normally
        assert inner.cancelling() == 0

    run(main)


def test_asyncio_shield_around_scopes(run):
    async def work():
        with CancelScope() as scope:
            scope.cancel()
            await asyncio.sleep(1000)
        with scopeloop.move_on_after(0.001):
            await asyncio.sleep(1000)
        return scope.cancelled_caught

    async def main():
        assert await asyncio.shield(work()) is True
        # Native cancel of the awaiting task: stock shield semantics.
        inner = asyncio.create_task(work())
        outer = asyncio.ensure_future(asyncio.shield(inner))
        await asyncio.sleep(0)
        outer.cancel()
        with pytest.raises(CancelledError):
            await outer
        assert await inner is True
        assert cancelling() == 0

    run(main)


# -- native cancellation and shields ----------------------------------------------------


@pytest.mark.parametrize("region", ["not_cancelled", "cancelled"])
def test_native_cancel_goes_through_a_shield(run, region):
    async def victim(ready: asyncio.Event, log: list[Any]):
        with CancelScope() as outer:
            if region == "cancelled":
                outer.cancel()
            with CancelScope(shield=True) as shield:
                ready.set()
                try:
                    await asyncio.sleep(1000)
                except CancelledError as exc:
                    log.append(("caught", cancelling(), exc.args))
                    raise
        log.append("not reached")

    async def main():
        ready, log = asyncio.Event(), []
        task = asyncio.create_task(victim(ready, log))
        await ready.wait()
        assert task.cancel("native")
        with pytest.raises(CancelledError):
            await task
        assert task.cancelled()
        assert log == [("caught", 1, ("native",))]
        assert task.cancelling() == 1

    run(main)


def test_native_cancel_inside_shield_same_as_stock(run):
    """Without scopes this is plain asyncio: both loops must agree."""
    async def scenario():
        log: list[Any] = []

        async def victim(ready: asyncio.Event):
            ready.set()
            try:
                await asyncio.sleep(1000)
            except CancelledError:
                log.append(("victim", current().cancelling()))
                raise

        ready = asyncio.Event()
        task = asyncio.create_task(victim(ready))
        await ready.wait()
        task.cancel()
        try:
            await task
        except CancelledError:
            log.append(("awaiter", task.cancelled(), task.cancelling()))
        return log

    assert run(scenario) == run_on_stock(scenario) == [("victim", 1), ("awaiter", True, 1)]


# -- a native cancel and a scope cancel in the same iteration -------------------------------


@pytest.mark.parametrize("order", ["scope_first", "native_first"])
@pytest.mark.parametrize("state", ["blocked", "ready", "running"])
def test_native_and_scope_cancel_in_same_iteration_never_swallowed(run, order, state):
    async def victim(log: list[Any]):
        task = current()
        loop = asyncio.get_running_loop()

        def both(scope: CancelScope) -> None:
            if order == "scope_first":
                scope.cancel()
                log.append(("native cancel", task.cancel()))
            else:
                log.append(("native cancel", task.cancel()))
                scope.cancel()
            log.append(("cancelling after both", task.cancelling()))

        try:
            with CancelScope() as scope:
                if state == "running":
                    both(scope)
                    await asyncio.sleep(0)
                else:
                    loop.call_soon(both, scope)
                    if state == "ready":
                        await asyncio.sleep(0)      # ready to run, no future
                    else:
                        await blocked_forever()     # blocked on a future
                await asyncio.sleep(1000)
            log.append(("swallowed", cancelling()))
        except CancelledError:
            log.append(("cancelled", cancelling()))
            raise

    async def main():
        log: list[Any] = []
        task = asyncio.create_task(victim(log))
        with pytest.raises(CancelledError):
            await task
        assert task.cancelled()
        assert log == [("native cancel", True), ("cancelling after both", 1), ("cancelled", 1)]
        assert task.cancelling() == 1

    run(main)


def test_native_cancel_then_scope_catches_later_cancellation(run):
    """Once the native request is uncancelled, the scope catches its own again."""
    async def main():
        task = current()
        with CancelScope() as scope:
            task.cancel()
            with pytest.raises(CancelledError):
                await asyncio.sleep(0)
            assert task.uncancel() == 0
            scope.cancel()
            await asyncio.sleep(0)
        assert scope.cancelled_caught
        assert cancelling() == 0

    run(main)


# -- a native cancel followed by asyncio.timeout(0) ---------------------------------------


async def native_cancel_then_timeout_zero() -> list[Any]:
    task = current()
    log: list[Any] = [("cancel", task.cancel(), task.cancelling())]
    try:
        async with asyncio.timeout(0) as timeout:
            log.append(("entered", task.cancelling()))
            await asyncio.sleep(1)
        log.append(("not raised", task.cancelling()))
    except TimeoutError:
        log.append(("TimeoutError", task.cancelling(), timeout.expired()))
    except CancelledError:
        log.append(("CancelledError", task.cancelling(), timeout.expired()))
    try:
        await asyncio.sleep(0)
        log.append(("next checkpoint passes", task.cancelling()))
    except CancelledError:
        log.append(("next checkpoint raises", task.cancelling()))
    return log


def test_native_cancel_then_timeout_zero_matches_stock(run):
    stock = run_on_stock(native_cancel_then_timeout_zero)
    # What CPython does (3.11-3.13): the timeout reports TimeoutError and the
    # native request stays counted.
    assert stock == [("cancel", True, 1), ("entered", 1), ("TimeoutError", 1, True),
                     ("next checkpoint passes", 1)]
    assert run(native_cancel_then_timeout_zero) == stock


def test_native_cancel_then_timeout_zero_inside_scope_matches_stock(run):
    async def main():
        with CancelScope() as scope:
            log = await native_cancel_then_timeout_zero()
        assert not scope.cancel_called and not scope.cancelled_caught
        return log

    assert run(main) == run_on_stock(native_cancel_then_timeout_zero)


@pytest.mark.parametrize("helper", ["move_on_after", "fail_after"])
def test_native_cancel_then_scopeloop_zero_timeout_propagates(run, helper):
    async def main():
        task = current()
        assert task.cancel()
        assert task.cancelling() == 1
        factory = getattr(scopeloop, helper)
        with pytest.raises(CancelledError) as info:
            with factory(0) as scope:
                assert task.cancelling() == 1
                await asyncio.sleep(1)
        assert info.type is CancelledError   # not TimeoutError, not swallowed
        assert scope.cancel_called and not scope.cancelled_caught
        assert task.cancelling() == 1
        await asyncio.sleep(0)               # the native request was delivered once
        assert task.cancelling() == 1
        task.uncancel()

    run(main)


# -- eager tasks (3.12+) -------------------------------------------------------------------


needs_eager = pytest.mark.skipif(sys.version_info < (3, 12),
                                 reason="eager task factories exist from Python 3.12")


@needs_eager
def test_eager_tasks_inside_scopes(run):
    async def self_cancelling(log: list[str]):
        log.append(f"first step, deadline={scopeloop.current_effective_deadline()}")
        with CancelScope() as scope:
            scope.cancel()
            await asyncio.sleep(0)
        log.append(f"caught={scope.cancelled_caught}, cancelling={cancelling()}")
        return "done"

    async def quick():
        return "quick"

    async def main():
        loop = asyncio.get_running_loop()
        loop.set_task_factory(scopeloop.eager_task_factory)
        log: list[str] = []
        task = asyncio.create_task(self_cancelling(log))
        assert isinstance(task, scopeloop.Task)
        assert log == ["first step, deadline=inf"]      # it ran eagerly
        assert await task == "done"
        assert log[1] == "caught=True, cancelling=0"
        with CancelScope() as scope:
            scope.cancel()
            finished = asyncio.create_task(quick())
            assert finished.done() and finished.result() == "quick"
        assert not scope.cancelled_caught                  # no checkpoint happened
        assert cancelling() == 0

    run(main)


@needs_eager
def test_eager_task_spawned_into_cancelled_group(run):
    async def child(log: list[str]):
        log.append("started")
        try:
            await asyncio.sleep(0)
        except CancelledError:
            log.append(f"raised, cancelling={cancelling()}")
            raise
        log.append("not reached")

    async def main():
        asyncio.get_running_loop().set_task_factory(scopeloop.eager_task_factory)
        log: list[str] = []
        async with scopeloop.create_task_group() as group:
            group.cancel_scope.cancel()
            group.start_soon(child, log)
            assert log == ["started"]                    # eager: the first step ran already
        assert log == ["started", "raised, cancelling=0"]
        log.clear()
        async with asyncio.TaskGroup() as group:
            with CancelScope() as scope:
                scope.cancel()
                task = group.create_task(child(log))     # a stock group child: not in the scope
            await asyncio.sleep(0)
        assert task.done() and not task.cancelled()
        assert log == ["started", "not reached"]
        assert cancelling() == 0

    run(main)


@needs_eager
def test_eager_child_first_step_runs_inside_group_scope(run):
    async def child(log: list[float]):
        log.append(scopeloop.current_effective_deadline())
        await asyncio.sleep(0)

    async def main():
        asyncio.get_running_loop().set_task_factory(scopeloop.eager_task_factory)
        log: list[float] = []
        async with scopeloop.create_task_group() as group:
            group.cancel_scope.deadline = asyncio.get_running_loop().time() + 1000
            group.start_soon(child, log)
            group.cancel_scope.cancel()
            group.start_soon(child, log)
        assert log == [group.cancel_scope.deadline, -math.inf]

    run(main)
