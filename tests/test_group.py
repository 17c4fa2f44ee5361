"""Task groups (issue 4): failure cancels the group, exception groups, native
cancellation of the host, ``start()``, misuse, names, and scale."""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import sys
import tracemalloc
from collections.abc import Callable
from typing import Any

import pytest

import scopeloop
from scopeloop import (
    TASK_STATUS_IGNORED,
    CancelScope,
    create_task_group,
    sleep_forever,
    wait_all_tasks_blocked,
)
from scopeloop.task import ScopeCancelMessage

Run = Callable[..., Any]


class Fatal(BaseException):
    """A BaseException that is not an Exception, to check BaseExceptionGroup."""


def is_scope_cancel(exc: BaseException) -> bool:
    return bool(exc.args) and isinstance(exc.args[0], ScopeCancelMessage)


# -- a failing child cancels the group ------------------------------------------


def test_failing_child_cancels_group_before_any_sibling_passes_a_checkpoint(run: Run) -> None:
    # As in Trio, a sibling already woken runs the step it was woken for, but its
    # next checkpoint raises: the failure is seen (one iteration later, from the
    # failing task's done callback) before any task's next step.
    seen: dict[str, Any] = {}

    async def main() -> None:
        ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()

        async def fails() -> None:
            # Complete the future a sibling waits on: its wake-up is queued before
            # anything this failure could schedule.
            ready.set_result("value")
            raise ValueError("boom")

        async def woken() -> None:
            seen["result"] = await ready
            try:
                await scopeloop.checkpoint()
            except asyncio.CancelledError as exc:
                seen["woken cancelled by scope"] = is_scope_cancel(exc)
                raise
            seen["woken not cancelled"] = True

        async def spins() -> None:
            # Started after `fails`: its first step runs right after the failure.
            passed = 0
            try:
                while True:
                    await scopeloop.checkpoint()
                    passed += 1
            except asyncio.CancelledError as exc:
                seen["checkpoints passed after the failure"] = passed
                seen["spinner cancelled by scope"] = is_scope_cancel(exc)
                raise

        with pytest.raises(ExceptionGroup) as info:
            async with create_task_group() as tg:
                tg.start_soon(woken)
                await wait_all_tasks_blocked()
                tg.start_soon(fails)
                tg.start_soon(spins)
        assert tg.cancel_scope.cancel_called
        assert [type(e) for e in info.value.exceptions] == [ValueError]

    run(main)
    assert seen == {
        "result": "value",  # the operation completed: the result is not lost
        "woken cancelled by scope": True,
        "checkpoints passed after the failure": 0,
        "spinner cancelled by scope": True,
    }


def test_system_exit_in_a_child_leaves_the_loop_once(run: Run,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    # As on stock asyncio, the task's own step re-raises SystemExit out of the loop;
    # the group must not report it a second time while the runner shuts down.
    async def main() -> None:
        async def child() -> None:
            sys.exit(3)

        async with create_task_group() as tg:
            tg.start_soon(child)
            await scopeloop.sleep_forever()

    with pytest.raises(SystemExit) as info:
        run(main)
    assert info.value.code == 3
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


def test_failing_child_cancels_group_inside_cancelled_enclosing_scope(run: Run) -> None:
    seen: list[object] = []

    async def main() -> None:
        release = asyncio.Event()

        async def fails_after_shield() -> None:
            with CancelScope(shield=True):
                await release.wait()
                raise ValueError("boom")

        async def sibling() -> None:
            with CancelScope(shield=True):
                await release.wait()
                # Woken together with the failing child; by its next (shielded)
                # checkpoint the failure has cancelled the group.
                await asyncio.sleep(0)
                seen.append(tg.cancel_scope.cancel_called)

        with CancelScope() as outer:
            with pytest.raises(ExceptionGroup) as info:
                async with create_task_group() as tg:
                    tg.start_soon(fails_after_shield)
                    tg.start_soon(sibling)
                    await wait_all_tasks_blocked()
                    outer.cancel()
                    assert not tg.cancel_scope.cancel_called
                    release.set()
            seen.append(tg.cancel_scope.cancel_called)
            assert [type(e) for e in info.value.exceptions] == [ValueError]
            await scopeloop.checkpoint()
            seen.append("not reached")
        assert outer.cancelled_caught
        assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]

    run(main)
    assert seen == [True, True]


def test_errors_are_raised_together_as_exception_group(run: Run) -> None:
    async def main() -> None:
        async def raises(exc: BaseException) -> None:
            raise exc

        with pytest.raises(ExceptionGroup) as info:
            async with create_task_group() as tg:
                tg.start_soon(raises, ValueError("one"))
                tg.start_soon(raises, KeyError("two"))
        # Both children ran their first step (no checkpoint before raising).
        assert type(info.value) is ExceptionGroup
        assert sorted(repr(e) for e in info.value.exceptions) == [
            "KeyError('two')", "ValueError('one')"]

        with pytest.raises(BaseExceptionGroup) as binfo:
            async with create_task_group() as tg:
                tg.start_soon(raises, ValueError("one"))
                tg.start_soon(raises, Fatal("two"))
        assert not isinstance(binfo.value, ExceptionGroup)
        assert {type(e) for e in binfo.value.exceptions} == {ValueError, Fatal}

        # An error in the body of the group joins the children's errors.
        with pytest.raises(ExceptionGroup) as info:
            async with create_task_group() as tg:
                tg.start_soon(raises, ValueError("child"))  # its first step still runs
                raise KeyError("body")
        assert sorted(repr(e) for e in info.value.exceptions) == [
            "KeyError('body')", "ValueError('child')"]

    run(main)


def test_cancellations_are_not_errors(run: Run) -> None:
    outcomes: list[str] = []

    async def main() -> None:
        async def blocked() -> None:
            try:
                await sleep_forever()
            except asyncio.CancelledError:
                outcomes.append("blocked cancelled")
                raise

        async def fails() -> None:
            await scopeloop.checkpoint()
            raise ValueError("boom")

        with pytest.raises(ExceptionGroup) as info:
            async with create_task_group() as tg:
                tg.start_soon(blocked)
                tg.start_soon(blocked)
                tg.start_soon(fails)
                try:
                    await sleep_forever()
                except asyncio.CancelledError:
                    outcomes.append("body cancelled")
                    raise
        assert [type(e) for e in info.value.exceptions] == [ValueError]
        # As in Trio: the scope caught the cancellations the failure caused.
        assert tg.cancel_scope.cancelled_caught

        # Cancelling the group's own scope is no error at all.
        async with create_task_group() as tg:
            tg.start_soon(blocked)
            await wait_all_tasks_blocked()
            tg.cancel_scope.cancel()
            await sleep_forever()
        assert tg.cancel_scope.cancelled_caught
        assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]

    run(main)
    assert sorted(outcomes) == ["blocked cancelled"] * 3 + ["body cancelled"]


# -- __aexit__ is not a checkpoint ----------------------------------------------


def test_aexit_in_cancelled_scope_with_normal_children_does_not_raise(run: Run) -> None:
    steps: list[str] = []

    async def main() -> None:
        release = asyncio.Event()

        async def shielded() -> None:
            with CancelScope(shield=True):
                await release.wait()
            steps.append("shielded done")

        async def no_checkpoint() -> None:
            steps.append("quick done")

        with CancelScope() as outer:
            async with create_task_group() as tg:
                tg.start_soon(shielded)
                await wait_all_tasks_blocked()
                outer.cancel()
                # Spawned into a cancelled region: its first step still runs.
                tg.start_soon(no_checkpoint)
                release.set()
            steps.append("after group")
            # No children at all: exiting is not a checkpoint either.
            async with create_task_group():
                pass
            steps.append("after empty group")
            await scopeloop.checkpoint()
            steps.append("not reached")
        assert outer.cancelled_caught
        assert not tg.cancel_scope.cancel_called

    run(main)
    assert steps == ["quick done", "shielded done", "after group", "after empty group"]


def test_child_cancelled_by_enclosing_scope_is_reraised_for_it(run: Run) -> None:
    steps: list[str] = []

    async def main() -> None:
        async def child() -> None:
            try:
                await sleep_forever()
            except asyncio.CancelledError as exc:
                steps.append(f"child cancelled by scope: {is_scope_cancel(exc)}")
                raise

        with CancelScope() as outer:
            async with create_task_group() as tg:
                tg.start_soon(child)
                await wait_all_tasks_blocked()
                outer.cancel()
                # No checkpoint in the body: the host only waits in __aexit__.
            steps.append("not reached: the group must re-raise the cancellation")
        assert outer.cancelled_caught
        # As in Trio: the child that ended Cancelled cancelled its group, but the
        # cancellation is the enclosing scope's, so the group's scope did not catch it.
        assert tg.cancel_scope.cancel_called
        assert not tg.cancel_scope.cancelled_caught
        assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]

    run(main)
    assert steps == ["child cancelled by scope: True"]


def test_group_scope_catches_its_own_cancellation_of_children(run: Run) -> None:
    async def main() -> None:
        async with create_task_group() as tg:
            tg.start_soon(sleep_forever)
            await wait_all_tasks_blocked()
            tg.cancel_scope.cancel()  # no checkpoint after this in the body
        assert tg.cancel_scope.cancelled_caught

    run(main)


async def _natively_cancel_one_child(make_group: Any, spawn: Any) -> list[object]:
    """A child cancelled by task.cancel() (no scope involved), next to a sibling."""
    seen: list[object] = []
    loop = asyncio.get_running_loop()
    victim: list[asyncio.Task[Any]] = []
    go_on = asyncio.Event()

    async def child() -> None:
        victim.append(asyncio.current_task())  # type: ignore[arg-type]
        await loop.create_future()

    async def sibling() -> None:
        await go_on.wait()
        seen.append("sibling went on")

    async with make_group() as group:
        spawn(group, child)
        spawn(group, sibling)
        await asyncio.sleep(0)
        victim[0].cancel()
        await asyncio.sleep(0)  # the child ends cancelled
        await asyncio.sleep(0)
        seen.append(("victim cancelled", victim[0].cancelled()))
        go_on.set()
    seen.append("group exited")
    return seen


def test_child_cancelled_natively_leaves_its_group_alone(run: Run) -> None:
    """A child's own native cancel keeps its stock meaning (asyncio.TaskGroup):
    it does not cancel the group.  Only a child ending with a *scope's*
    cancellation cancels it, as in Trio (tests/test_like_trio.py)."""
    async def main() -> None:
        stock = await _natively_cancel_one_child(asyncio.TaskGroup,
                                                 lambda g, f: g.create_task(f()))
        groups: list[scopeloop.TaskGroup] = []

        def make() -> scopeloop.TaskGroup:
            groups.append(create_task_group())
            return groups[-1]
        ours = await _natively_cancel_one_child(make, lambda g, f: g.start_soon(f))
        assert stock == [("victim cancelled", True), "sibling went on", "group exited"]
        assert ours == stock
        assert not groups[0].cancel_scope.cancel_called

    run(main)


# -- native cancellation of the host --------------------------------------------


@pytest.mark.parametrize("where", ["body", "aexit"])
def test_native_cancel_of_host_goes_through_group_scope(run: Run, where: str) -> None:
    log: list[object] = []

    async def main() -> None:
        release = asyncio.Event()
        shield_entered = asyncio.Event()
        child_tasks: list[asyncio.Task[Any]] = []

        async def blocked() -> None:
            child_tasks.append(asyncio.current_task())  # type: ignore[arg-type]
            try:
                await sleep_forever()
            except asyncio.CancelledError as exc:
                log.append(("blocked", is_scope_cancel(exc),
                            asyncio.current_task().cancelling()))  # type: ignore[union-attr]
                raise

        async def shielded() -> None:
            with CancelScope(shield=True):
                shield_entered.set()
                await release.wait()
                log.append("shielded work finished")

        async def host() -> None:
            try:
                async with create_task_group() as tg:
                    tg.start_soon(blocked)
                    tg.start_soon(shielded)
                    if where == "body":
                        await sleep_forever()
            except asyncio.CancelledError as exc:
                me = asyncio.current_task()
                assert me is not None
                log.append(("host", str(exc), me.cancelling(), tg.cancel_scope.cancel_called))
                me.uncancel()
                raise

        task = asyncio.get_running_loop().create_task(host())
        await shield_entered.wait()
        await wait_all_tasks_blocked()
        task.cancel("stop")
        await wait_all_tasks_blocked()
        assert not task.done()  # waiting for the shielded child
        assert task.cancelling() == 1
        assert log == [("blocked", True, 0)]
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert task.cancelling() == 0
        assert all(t.cancelling() == 0 for t in child_tasks)

    run(main)
    assert log[1:] == ["shielded work finished", ("host", "stop", 1, True)]


async def _two_cancels_in_aexit(make_group: Callable[[], Any],
                                spawn: Callable[[Any, Any], None],
                                first_in_body: bool) -> tuple[object, ...]:
    """Cancel the host natively twice; return what can be compared with asyncio's."""
    release = asyncio.Event()
    child_cancelled = asyncio.Event()
    host_in_aexit = asyncio.Event()
    child_saw: list[int] = []

    async def child() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            child_saw.append(1)
            child_cancelled.set()
            with CancelScope(shield=True):
                await release.wait()
            raise

    async def host() -> str:
        group = make_group()
        try:
            async with group:
                spawn(group, child)
                if first_in_body:
                    await asyncio.Event().wait()
                host_in_aexit.set()
        except asyncio.CancelledError as exc:
            return f"CancelledError({exc})"
        return "returned"

    task = asyncio.get_running_loop().create_task(host())
    await wait_all_tasks_blocked()
    task.cancel("first")
    await child_cancelled.wait()
    await wait_all_tasks_blocked()
    if not first_in_body:
        assert host_in_aexit.is_set()
    task.cancel("second")
    await wait_all_tasks_blocked()
    mid = (task.done(), task.cancelling())
    release.set()
    result = await task
    return (result, mid, task.cancelling(), len(child_saw))


@pytest.mark.parametrize("first_in_body", [False, True])
def test_two_native_cancels_while_waiting_behave_as_asyncio_taskgroup(
        run: Run, first_in_body: bool) -> None:
    async def main() -> None:
        stock = await _two_cancels_in_aexit(
            asyncio.TaskGroup, lambda g, f: g.create_task(f()), first_in_body)
        ours = await _two_cancels_in_aexit(
            create_task_group, lambda g, f: g.start_soon(f), first_in_body)
        assert stock == ("CancelledError(first)", (False, 2), 2, 1)
        assert ours == stock

    run(main)


# -- start() ----------------------------------------------------------------------


def test_start_returns_value_and_task_joins_group(run: Run) -> None:
    log: list[object] = []

    async def main() -> None:
        async def service(*, task_status: Any = TASK_STATUS_IGNORED) -> None:
            task_status.started("ready")
            try:
                await sleep_forever()
            except asyncio.CancelledError as exc:
                log.append(("service cancelled", is_scope_cancel(exc)))
                raise

        async with create_task_group() as tg:
            with CancelScope() as caller_scope:
                assert await tg.start(service) == "ready"
                # The task now belongs to the group: cancelling the caller's scope
                # does not reach it.
                caller_scope.cancel()
                await scopeloop.checkpoint()
            assert caller_scope.cancelled_caught
            await wait_all_tasks_blocked()
            assert log == []
            tg.cancel_scope.cancel()
        assert tg.cancel_scope.cancelled_caught

    run(main)
    assert log == [("service cancelled", True)]


def test_start_native_cancel_of_caller_after_started_spares_task(run: Run) -> None:
    log: list[str] = []

    async def main() -> None:
        async def service(*, task_status: Any = TASK_STATUS_IGNORED) -> None:
            task_status.started()
            await sleep_forever()

        async def caller(tg: scopeloop.TaskGroup) -> None:
            await tg.start(service)
            await sleep_forever()

        async with create_task_group() as tg:
            task = asyncio.get_running_loop().create_task(caller(tg))
            await wait_all_tasks_blocked()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await wait_all_tasks_blocked()
            assert len(tg._tasks) == 1  # the service is still running, in the group
            log.append("service survived")
            tg.cancel_scope.cancel()

    run(main)
    assert log == ["service survived"]


def test_start_exception_before_started_propagates_from_start(run: Run) -> None:
    async def main() -> None:
        async def broken(*, task_status: Any = TASK_STATUS_IGNORED) -> None:
            await scopeloop.checkpoint()
            raise ValueError("no can do")

        async def bystander() -> None:
            await scopeloop.checkpoint()

        async with create_task_group() as tg:
            tg.start_soon(bystander)
            with pytest.raises(ValueError, match="no can do"):
                await tg.start(broken)
        # Not an error of the target group, which was not cancelled either.
        assert not tg.cancel_scope.cancel_called

    run(main)


@pytest.mark.parametrize("how", ["scope", "native"])
def test_start_caller_cancelled_before_started(run: Run, how: str) -> None:
    log: list[object] = []

    async def main() -> None:
        release = asyncio.Event()

        async def slow(*, task_status: Any = TASK_STATUS_IGNORED) -> None:
            try:
                await sleep_forever()
            except asyncio.CancelledError as exc:
                log.append(("starting task cancelled by scope", is_scope_cancel(exc)))
                with CancelScope(shield=True):
                    await release.wait()  # a shield inside the starting task holds
                    log.append("shielded cleanup done")
                raise

        async def bystander() -> None:
            await sleep_forever()

        async def caller(tg: scopeloop.TaskGroup) -> None:
            with CancelScope() as scope:
                caller_scopes.append(scope)
                try:
                    await tg.start(slow)
                except asyncio.CancelledError as exc:
                    me = asyncio.current_task()
                    assert me is not None
                    log.append(("start() raised CancelledError", str(exc) == "native",
                                me.cancelling()))
                    raise
            log.append(("caller scope caught", scope.cancelled_caught))

        caller_scopes: list[CancelScope] = []
        async with create_task_group() as tg:
            tg.start_soon(bystander)
            task = asyncio.get_running_loop().create_task(caller(tg))
            await wait_all_tasks_blocked()
            if how == "scope":
                caller_scopes[0].cancel()
            else:
                task.cancel("native")
            await wait_all_tasks_blocked()
            assert not task.done()  # start() waits for the shielded cleanup
            release.set()
            if how == "native":
                with pytest.raises(asyncio.CancelledError):
                    await task
            else:
                await task
            assert not tg.cancel_scope.cancel_called  # the target group is untouched
            assert len(tg._tasks) == 1  # only the bystander
            tg.cancel_scope.cancel()

    run(main)
    expected_start = ("start() raised CancelledError", how == "native", 1 if how == "native" else 0)
    assert log[:3] == [("starting task cancelled by scope", True), "shielded cleanup done",
                       expected_start]
    if how == "scope":
        assert log[3:] == [("caller scope caught", True)]


def test_start_target_group_cancelled_before_started(run: Run) -> None:
    log: list[object] = []

    async def main() -> None:
        go = asyncio.Event()

        async def service(*, task_status: Any = TASK_STATUS_IGNORED) -> None:
            await go.wait()  # not cancelled: it still belongs to the caller
            log.append("calling started")
            task_status.started("value")
            try:
                await scopeloop.checkpoint()
            except asyncio.CancelledError as exc:
                log.append(("cancelled in the target group", is_scope_cancel(exc)))
                raise

        async def caller(tg: scopeloop.TaskGroup) -> None:
            log.append(("start() returned", await tg.start(service)))

        outer_done = asyncio.Event()

        async def target_host() -> None:
            async with create_task_group() as tg:
                groups.append(tg)
                await sleep_forever()
            outer_done.set()

        groups: list[scopeloop.TaskGroup] = []
        async with create_task_group() as outer:
            outer.start_soon(target_host)
            await wait_all_tasks_blocked()
            tg = groups[0]
            outer.start_soon(caller, tg)
            await wait_all_tasks_blocked()
            tg.cancel_scope.cancel()
            await wait_all_tasks_blocked()
            # The target group waits for the pending start() before it closes.
            assert not outer_done.is_set()
            go.set()
        assert tg.cancel_scope.cancelled_caught

    run(main)
    assert log == ["calling started", ("start() returned", "value"),
                   ("cancelled in the target group", True)]


def test_started_twice_raises(run: Run) -> None:
    async def main() -> None:
        async def twice(*, task_status: Any = TASK_STATUS_IGNORED) -> None:
            task_status.started(1)
            with pytest.raises(RuntimeError, match="already called"):
                task_status.started(2)

        async with create_task_group() as tg:
            assert await tg.start(twice) == 1

        async def twice_unhandled(*, task_status: Any = TASK_STATUS_IGNORED) -> None:
            task_status.started(1)
            task_status.started(2)

        with pytest.raises(ExceptionGroup) as info:
            async with create_task_group() as tg:
                await tg.start(twice_unhandled)
        [error] = info.value.exceptions
        assert isinstance(error, RuntimeError) and "already called" in str(error)

    run(main)


def test_task_returning_without_started(run: Run) -> None:
    async def main() -> None:
        async def forgetful(*, task_status: Any = TASK_STATUS_IGNORED) -> None:
            await scopeloop.checkpoint()

        async with create_task_group() as tg:
            with pytest.raises(RuntimeError, match="without calling task_status.started"):
                await tg.start(forgetful, name="forgetful-task")
        assert not tg.cancel_scope.cancel_called

    run(main)


def test_started_after_starter_cancelled_keeps_task_with_caller(run: Run) -> None:
    log: list[object] = []

    async def main() -> None:
        async def late(*, task_status: Any = TASK_STATUS_IGNORED) -> None:
            try:
                await sleep_forever()
            except asyncio.CancelledError as exc:
                task_status.started(exc)  # the only call: must not complain
                log.append("started() returned")
                raise

        async with create_task_group() as tg:
            with CancelScope() as scope:
                scope.cancel()
                await tg.start(late)
                log.append("not reached")
            assert scope.cancelled_caught
        assert not tg.cancel_scope.cancel_called

        # A task that returns normally after started() in the cancelled region:
        # start() returns the value (Trio since its PR #1696), and the caller's
        # next checkpoint raises.
        async def late_return(*, task_status: Any = TASK_STATUS_IGNORED) -> None:
            try:
                await sleep_forever()
            except asyncio.CancelledError:
                task_status.started("late value")
                log.append("returning")

        async with create_task_group() as tg:
            with CancelScope() as scope:
                scope.cancel()
                log.append(("start() returned", await tg.start(late_return)))
                await scopeloop.checkpoint()
                log.append("not reached")
            assert scope.cancelled_caught
        assert not tg.cancel_scope.cancel_called

    run(main)
    assert log == ["started() returned", "returning", ("start() returned", "late value")]


@pytest.mark.skipif(sys.version_info < (3, 12), reason="eager tasks exist from Python 3.12")
def test_start_with_eager_task_factory(run: Run) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.set_task_factory(scopeloop.eager_task_factory)
        try:
            async def immediate(*, task_status: Any = TASK_STATUS_IGNORED) -> None:
                task_status.started("now")  # inside the eager first step
                await sleep_forever()

            async with create_task_group() as tg:
                assert await tg.start(immediate) == "now"
                assert len(tg._tasks) == 1
                tg.cancel_scope.cancel()
            assert tg.cancel_scope.cancelled_caught

            async def fails_after_started(*, task_status: Any = TASK_STATUS_IGNORED) -> None:
                task_status.started("then fails")
                raise ValueError("after started")

            async def fails_before_started(*, task_status: Any = TASK_STATUS_IGNORED) -> None:
                raise KeyError("before started")

            with pytest.raises(ExceptionGroup) as info:
                async with create_task_group() as tg:
                    with pytest.raises(KeyError):
                        await tg.start(fails_before_started)
                    # Finished inside its eager first step, after started(): the
                    # error belongs to the group.
                    assert await tg.start(fails_after_started) == "then fails"
            assert [type(e) for e in info.value.exceptions] == [ValueError]
        finally:
            loop.set_task_factory(None)

    run(main)


# -- misuse ------------------------------------------------------------------------


def test_spawning_outside_the_active_block_raises(run: Run) -> None:
    async def main() -> None:
        created: list[str] = []

        async def child(*, task_status: Any = TASK_STATUS_IGNORED) -> None:
            created.append("ran")

        tg = create_task_group()
        with pytest.raises(RuntimeError, match="not been entered"):
            tg.start_soon(child)
        with pytest.raises(RuntimeError, match="not been entered"):
            await tg.start(child)
        async with tg:
            pass
        with pytest.raises(RuntimeError, match="already exited"):
            tg.start_soon(child)
        with pytest.raises(RuntimeError, match="already exited"):
            await tg.start(child)
        await wait_all_tasks_blocked()
        assert created == []

    run(main)


def test_non_async_function_raises_type_error(run: Run) -> None:
    async def main() -> None:
        def plain() -> int:
            return 1

        async def coroutine_function() -> None:
            pass

        async with create_task_group() as tg:
            with pytest.raises(TypeError, match=r"Expected .*plain\(\) to return a "
                               r"coroutine, but the return value \(1\)") as error:
                tg.start_soon(plain)  # type: ignore[arg-type]
            assert "define it with 'async def'" in error.value.__notes__[0]
            with pytest.raises(TypeError, match="task_status"):  # (plain takes none)
                await tg.start(plain)  # type: ignore[arg-type]
            with pytest.raises(TypeError, match="async"):
                tg.start_soon(42)  # type: ignore[arg-type]
            coro = coroutine_function()
            with pytest.raises(TypeError, match="async function"):
                tg.start_soon(coro)  # type: ignore[arg-type]
            # Closed, so no "coroutine was never awaited" warning follows.
            assert coro.cr_frame is None
        assert not tg.cancel_scope.cancel_called

    run(main)


def test_child_task_names(run: Run) -> None:
    async def main() -> None:
        names: list[str] = []

        async def child(*, task_status: Any = TASK_STATUS_IGNORED) -> None:
            names.append(asyncio.current_task().get_name())  # type: ignore[union-attr]
            task_status.started()

        async with create_task_group() as tg:
            tg.start_soon(child, name="explicit")
            tg.start_soon(child, name=7)
            tg.start_soon(child)
            tg.start_soon(child, name="")
            await wait_all_tasks_blocked()
            await tg.start(child, name="started-explicit")
            await tg.start(child)
            await tg.create_task(child())
            await tg.start(functools.partial(child))
        assert names[:2] == ["explicit", "7"]
        assert names[3] == ""  # an empty name is a name, as in Trio and AnyIO
        assert names[4] == "started-explicit"
        # By default a child is named module.qualname, as Trio and AnyIO name it
        # (a partial after the function it wraps, as in Trio).
        default = f"{__name__}.{child.__qualname__}"
        assert names[2] == names[5] == names[6] == names[7] == default

    run(main)


def test_child_tasks_are_scopeloop_tasks_inside_group_scope(run: Run) -> None:
    async def main() -> None:
        async def child() -> None:
            me = asyncio.current_task()
            assert isinstance(me, scopeloop.Task)
            assert me._scope is tg.cancel_scope

        async with create_task_group() as tg:
            tg.start_soon(child)

    run(main)


# -- scale -------------------------------------------------------------------------


def test_hundred_thousand_children(run: Run) -> None:
    n = 100_000

    async def main() -> None:
        cancelled = 0

        async def idle() -> None:
            nonlocal cancelled
            try:
                await sleep_forever()
            except asyncio.CancelledError:
                cancelled += 1
                raise

        async def fails() -> None:
            raise ValueError("one of many")

        with pytest.raises(ExceptionGroup) as info:
            async with create_task_group() as tg:
                for _ in range(n):
                    tg.start_soon(idle)
                await wait_all_tasks_blocked()
                tg.start_soon(fails)
        assert [type(e) for e in info.value.exceptions] == [ValueError]
        assert cancelled == n
        assert len(asyncio.all_tasks()) == 1

    run(main)


def test_groups_nested_500_deep_across_tasks(run: Run) -> None:
    depth = 500

    async def main() -> None:
        async def level(n: int) -> None:
            async with create_task_group() as tg:
                if n:
                    tg.start_soon(level, n - 1)
                else:
                    tg.start_soon(fails)
                await sleep_forever()

        async def fails() -> None:
            await wait_all_tasks_blocked()
            raise ValueError("deepest")

        with pytest.raises(ExceptionGroup) as info:
            await level(depth)
        exc: BaseException = info.value
        levels = 0
        while isinstance(exc, BaseExceptionGroup):
            [exc] = exc.exceptions
            levels += 1
        assert levels == depth + 1
        assert isinstance(exc, ValueError)
        assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]

    run(main)


def test_groups_nested_500_deep_in_one_task(run: Run) -> None:
    depth = 500

    async def main() -> None:
        groups: list[scopeloop.TaskGroup] = []

        async def nest(n: int) -> None:
            async with create_task_group() as tg:
                groups.append(tg)
                tg.start_soon(sleep_forever)
                if n:
                    await nest(n - 1)
                else:
                    await wait_all_tasks_blocked()
                    groups[0].cancel_scope.cancel()
                    await sleep_forever()

        await nest(depth - 1)
        assert len(groups) == depth
        assert groups[0].cancel_scope.cancelled_caught
        assert not any(g.cancel_scope.cancelled_caught for g in groups[1:])
        assert len(asyncio.all_tasks()) == 1
        assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]

    run(main)


def test_memory_per_idle_child_near_plain_task(run: Run) -> None:
    n = 5_000

    async def idle(event: asyncio.Event) -> None:
        await event.wait()

    async def measure(spawn: Callable[[asyncio.Event], None]) -> int:
        event = asyncio.Event()
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(n):
            spawn(event)
        await wait_all_tasks_blocked()
        used = tracemalloc.get_traced_memory()[0] - before
        event.set()
        # Let every task finish and be released before the next measurement.
        while len(asyncio.all_tasks()) > 1:
            await asyncio.sleep(0)
        for _ in range(3):
            await asyncio.sleep(0)
        return used // n

    async def main() -> tuple[int, int]:
        loop = asyncio.get_running_loop()
        plain_tasks: set[asyncio.Task[None]] = set()

        def plain(event: asyncio.Event) -> None:
            # The stock C Task, as asyncio.create_task makes on a stock loop.
            task = asyncio.Task(idle(event), loop=loop)
            plain_tasks.add(task)
            task.add_done_callback(plain_tasks.discard)

        async with create_task_group() as tg:
            def child(event: asyncio.Event) -> None:
                tg.start_soon(idle, event)

            await measure(plain)  # warm up allocator pools and caches
            plain_bytes = await measure(plain)
            child_bytes = await measure(child)
        return plain_bytes, child_bytes

    tracemalloc.start()
    try:
        plain_bytes, child_bytes = run(main)
    finally:
        tracemalloc.stop()
    print(f"\nidle task memory: plain asyncio.Task {plain_bytes} B, "
          f"scopeloop group child {child_bytes} B ({child_bytes / plain_bytes:.2f}x)")
    assert child_bytes < 2 * plain_bytes


# -- what a group's error keeps alive --------------------------------------------------

@pytest.mark.parametrize("where", ["body", "child"])
def test_errors_are_freed_without_the_cycle_collector(run: Callable[..., Any],
                                                      where: str) -> None:
    """Once the caught group is dropped, its errors go at once (by reference count):
    no cycle through __aexit__'s frame, and the group object, still referenced,
    keeps none of them."""
    import weakref

    class Boom(Exception):
        pass

    async def fail() -> None:
        raise Boom

    async def main() -> tuple[bool, bool, bool]:
        tg = scopeloop.create_task_group()
        try:
            async with tg:
                if where == "body":
                    raise Boom
                tg.start_soon(fail)
        except BaseExceptionGroup as group:
            error = weakref.ref(group.exceptions[0])
            suppressed = group.__suppress_context__
        alive = error() is not None
        del tg  # (not before: the group must not be what keeps the error)
        return error() is None, alive, suppressed

    gc.disable()
    try:
        freed, alive_with_group, suppressed = run(main)
    finally:
        gc.enable()
    assert not alive_with_group and freed
    assert suppressed  # the body's error is in the group, not also its __context__


@pytest.mark.parametrize("kept", ["group", "scope"])
def test_an_exited_group_or_scope_keeps_its_task_free(run: Run, kept: str) -> None:
    """A group (or scope) kept after it exited keeps neither the task it ran in nor,
    through that task, the task's exception alive (AnyIO's TestRefcycles)."""
    import weakref

    class Boom(Exception):
        pass

    async def main() -> tuple[bool, bool]:
        tg = scopeloop.create_task_group()
        scope = CancelScope()

        async def child() -> None:
            if kept == "group":
                async with tg:
                    raise Boom
            with scope:
                raise Boom

        task = asyncio.get_running_loop().create_task(child())
        with pytest.raises((Boom, BaseExceptionGroup)) as caught:
            await task
        task_ref, error_ref = weakref.ref(task), weakref.ref(caught.value)
        del task, caught
        # (The wake-up that resumed us after the task's end refers to it until the
        # next pass of the loop.)
        await asyncio.sleep(0)
        gc.collect()
        assert tg is not None and scope is not None  # both are kept to the end
        return task_ref() is None, error_ref() is None

    task_freed, error_freed = run(main)
    assert task_freed and error_freed, "the exited group or scope keeps its task alive"


def test_empty_group_exit_is_a_schedule_point_not_a_cancel_point(
        run: Callable[..., Any]) -> None:
    """As a Trio nursery's: the other tasks run, a cancelled scope does not raise there."""
    import trio

    async def program(open_group: Any, Scope: Any) -> dict[str, bool]:
        seen: dict[str, bool] = {}
        ran: list[int] = []

        async def other() -> None:
            ran.append(1)

        async with open_group() as outer:
            outer.start_soon(other)
            # Trio runs each batch of ready tasks in either order, so it may take a
            # few exits (the odds of 40 are 2**-40); scopeloop's is the first.
            exits = 0
            while not ran and exits < 40:
                async with open_group():
                    pass
                exits += 1
            seen["other ran"] = bool(ran)
            seen["at the first exit"] = exits == 1
            with Scope() as scope:
                scope.cancel()
                async with open_group():
                    pass
                seen["reached in the cancelled scope"] = True
            seen["caught"] = scope.cancelled_caught
        return seen

    ours = run(program, scopeloop.create_task_group, scopeloop.CancelScope)
    trios = trio.run(program, trio.open_nursery, trio.CancelScope)
    del trios["at the first exit"]
    assert ours == dict(trios, **{"at the first exit": True})
    assert trios == {"other ran": True, "reached in the cancelled scope": True, "caught": False}


def test_start_with_a_plain_function_that_calls_started_first(run: Callable[..., Any]) -> None:
    """A plain function may call started() before returning the coroutine to run (as
    AnyIO allows): start() returns that value and the task joins the group."""
    async def body() -> int:
        await asyncio.sleep(0)
        return 8

    def wrapper(*, task_status: Any) -> Any:
        task_status.started(5)
        return body()

    async def main() -> tuple[Any, ...]:
        async with scopeloop.create_task_group() as tg:
            handle = await tg.start(wrapper, return_handle=True)
            in_group = handle._task in tg.cancel_scope._spawned  # type: ignore[attr-defined]
            value = await handle
        return handle.start_value, value, in_group

    assert run(main) == (5, 8, True)
