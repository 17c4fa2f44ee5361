"""Trio semantics of cancel scopes (DESIGN §3.1), on every backend.

Every test also checks ``cancelling()`` where it matters: scope cancellation must
never show in it (DESIGN §3.2, §4.1).
"""

from __future__ import annotations

import asyncio
import math

import pytest

import scopeloop
from scopeloop import CancelScope, current_effective_deadline

CancelledError = asyncio.CancelledError


def cancelling() -> int:
    task = asyncio.current_task()
    assert task is not None
    return task.cancelling()


async def blocked_forever() -> None:
    """Suspend on a future nobody completes (the task is blocked, not ready)."""
    await asyncio.get_running_loop().create_future()


# -- level triggering -------------------------------------------------------------


def test_level_triggered_every_checkpoint_raises_again(run):
    async def main():
        reached = []
        with CancelScope() as scope:
            scope.cancel()
            assert cancelling() == 0
            # Ready-to-run path (no future) and blocked path (a future), repeatedly.
            for checkpoint in [lambda: asyncio.sleep(0), scopeloop.checkpoint,
                               lambda: asyncio.sleep(10), blocked_forever,
                               lambda: asyncio.sleep(0), blocked_forever]:
                with pytest.raises(CancelledError):
                    await checkpoint()
                assert cancelling() == 0
            await asyncio.sleep(0)
            reached.append("after the last checkpoint")
        assert reached == []
        assert scope.cancelled_caught
        assert cancelling() == 0
        await asyncio.sleep(0)  # withdrawal: nothing is left behind
        assert cancelling() == 0

    run(main)


def test_level_triggered_when_cancelled_from_another_task(run):
    async def victim(scope: CancelScope, entered: asyncio.Event, caught: list[int]):
        with scope:
            entered.set()
            for _ in range(3):
                try:
                    await asyncio.sleep(10)
                except CancelledError:
                    if cancelling():
                        raise   # a native cancel: the test gave up on us
                    caught.append(cancelling())
            await blocked_forever()
        return scope

    async def main():
        entered = asyncio.Event()
        caught: list[int] = []
        scope = CancelScope()
        task = asyncio.create_task(victim(scope, entered, caught))
        await entered.wait()
        scope.cancel()
        await scopeloop.wait_all_tasks_blocked()
        if not task.done():
            task.cancel()
            pytest.fail(f"the victim still waits after catching {caught}")
        result = await task
        assert result is scope and scope.cancelled_caught
        assert caught == [0, 0, 0]
        assert task.cancelling() == 0

    run(main)


def test_await_suspending_in_cancelled_scope_raises_even_if_its_future_completes_first(run):
    async def main():
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        loop.call_soon(future.set_result, "value")   # queued before the cancellation
        with CancelScope() as scope:
            scope.cancel()
            await future          # suspends while cancelled: DESIGN §3.1 says it raises
            pytest.fail("the await returned")
        assert scope.cancelled_caught

    run(main)


# -- which scope catches -----------------------------------------------------------


def test_outermost_cancelled_scope_of_the_region_catches(run):
    async def main():
        with CancelScope() as outer:
            with CancelScope() as middle:
                with CancelScope() as inner:
                    inner.cancel()      # the inner one first ...
                    middle.cancel()     # ... but middle is the outermost cancelled one
                    await asyncio.sleep(0)
                    pytest.fail("not reached")
                pytest.fail("not reached")
            await asyncio.sleep(0)  # outer is not cancelled: no raise
        assert middle.cancelled_caught
        assert not inner.cancelled_caught
        assert not outer.cancelled_caught
        assert cancelling() == 0

    run(main)


def test_uncancelled_scopes_between_do_not_catch(run):
    async def main():
        with CancelScope() as outer:
            with CancelScope() as a:
                with CancelScope() as b:
                    outer.cancel()
                    await asyncio.sleep(10)
        assert outer.cancelled_caught
        assert not a.cancelled_caught and not b.cancelled_caught
        assert not a.cancel_called and not b.cancel_called

    run(main)


def test_shielded_cancelled_scope_catches_its_own_region(run):
    async def main():
        with CancelScope() as outer:
            outer.cancel()
            with CancelScope(shield=True) as shielded:
                with CancelScope() as inner:
                    shielded.cancel()
                    await asyncio.sleep(0)
            # A shielded scope's parent cancellation is not visible to it: it catches.
            assert shielded.cancelled_caught and not inner.cancelled_caught
            # ... and leaving it into the cancelled region raises at the next checkpoint.
            await asyncio.sleep(0)
            pytest.fail("not reached")
        assert outer.cancelled_caught
        assert cancelling() == 0

    run(main)


def test_scope_not_cancelled_when_exception_is_not_a_cancellation(run):
    async def main():
        with pytest.raises(ZeroDivisionError):
            with CancelScope() as scope:
                scope.cancel()
                1 / 0
        assert not scope.cancelled_caught
        # A CancelledError raised by hand is not the scope's and is not swallowed.
        with pytest.raises(CancelledError):
            with CancelScope() as scope:
                scope.cancel()
                raise CancelledError("by hand")
        assert not scope.cancelled_caught
        assert cancelling() == 0

    run(main)


def test_native_cancel_after_uncancel_of_an_earlier_one_is_not_swallowed(run):
    async def main():
        task = asyncio.current_task()
        task.cancel()
        with pytest.raises(CancelledError):
            await asyncio.sleep(0)       # delivered, still counted: 1 at the scope's entry
        with pytest.raises(CancelledError):
            with CancelScope() as scope:
                scope.cancel()
                with pytest.raises(CancelledError):
                    await asyncio.sleep(0)   # the scope's: it interrupted the task
                assert task.uncancel() == 0  # the earlier request is withdrawn ...
                task.cancel()                # ... and a new one arrives: never swallowed
                await asyncio.sleep(0)
        assert not scope.cancelled_caught
        assert task.cancelling() == 1
        task.uncancel()

    run(main)


# -- shields -----------------------------------------------------------------------


def test_shield_blocks_and_leaving_it_raises_at_next_checkpoint(run):
    async def main():
        steps = []
        with CancelScope() as outer:
            outer.cancel()
            with CancelScope(shield=True):
                await asyncio.sleep(0)
                await asyncio.sleep(0.001)
                await scopeloop.checkpoint()
                assert current_effective_deadline() == math.inf
                steps.append("shielded work done")
            steps.append("left the shield")  # no checkpoint yet: no raise
            try:
                await asyncio.sleep(0)
            except CancelledError:
                steps.append("raised")
                raise
        assert steps == ["shielded work done", "left the shield", "raised"]
        assert outer.cancelled_caught
        assert cancelling() == 0

    run(main)


def test_shield_blocks_cancel_from_another_task(run):
    async def victim(outer: CancelScope, outer_ready: asyncio.Event, go: asyncio.Event,
                     log: list[str]):
        with outer:
            with CancelScope(shield=True):
                outer_ready.set()
                await go.wait()           # outer is cancelled meanwhile: must not raise
                log.append("woke in shield")
            log.append("left shield")
            await asyncio.sleep(0)
            log.append("not reached")
        return outer

    async def main():
        outer_ready, go, log = asyncio.Event(), asyncio.Event(), []
        outer = CancelScope()
        task = asyncio.create_task(victim(outer, outer_ready, go, log))
        await outer_ready.wait()
        outer.cancel()
        await asyncio.sleep(0)
        assert not task.done()
        go.set()
        assert await task is outer and outer.cancelled_caught
        assert log == ["woke in shield", "left shield"]
        assert task.cancelling() == 0

    run(main)


def test_shield_set_on_entered_scope_before_cancel(run):
    async def main():
        with CancelScope() as outer:
            with CancelScope() as inner:
                inner.shield = True
                outer.cancel()
                await asyncio.sleep(0)
                inner.shield = False   # from the task itself: the next checkpoint raises
                await asyncio.sleep(0)
                pytest.fail("not reached")
        assert outer.cancelled_caught and not inner.cancelled_caught

    run(main)


def test_toggling_shield_off_from_another_task_delivers(run):
    async def victim(shield: CancelScope, ready: asyncio.Event, log: list[str]):
        with CancelScope() as outer:
            outer.cancel()
            with shield:
                ready.set()
                try:
                    await blocked_forever()
                except CancelledError:
                    log.append(f"raised, cancelling={cancelling()}")
                    raise
        return outer, shield

    async def main():
        ready, log = asyncio.Event(), []
        shield = CancelScope(shield=True)
        task = asyncio.create_task(victim(shield, ready, log))
        await ready.wait()
        await scopeloop.wait_all_tasks_blocked()
        assert not task.done() and log == []
        shield.shield = False
        outer, _ = await task
        assert log == ["raised, cancelling=0"]
        assert outer.cancelled_caught and not shield.cancelled_caught
        assert task.cancelling() == 0

    run(main)


# -- deadlines ---------------------------------------------------------------------


def test_deadline_moved_earlier(run):
    async def main():
        loop = asyncio.get_running_loop()
        with CancelScope(deadline=loop.time() + 1000) as scope:
            scope.deadline = loop.time() + 0.01
            await asyncio.sleep(1000)
        assert scope.cancelled_caught and scope.cancel_called
        assert cancelling() == 0

    run(main)


def test_deadline_moved_later(run):
    async def main():
        loop = asyncio.get_running_loop()
        with CancelScope(deadline=loop.time() + 0.01) as scope:
            scope.deadline = loop.time() + 1000
            # A timer due after the old deadline: the old deadline must not fire first.
            await asyncio.sleep(0.05)
        assert not scope.cancel_called and not scope.cancelled_caught
        assert scope.deadline > loop.time() + 900

    run(main)


def test_deadline_moved_to_inf(run):
    async def main():
        loop = asyncio.get_running_loop()
        with CancelScope(deadline=loop.time() + 0.01) as scope:
            scope.deadline = math.inf
            assert current_effective_deadline() == math.inf
            await asyncio.sleep(0.05)
        assert not scope.cancel_called and not scope.cancelled_caught

    run(main)


def test_deadline_moved_to_the_past(run):
    async def main():
        loop = asyncio.get_running_loop()
        with CancelScope(deadline=loop.time() + 1000) as scope:
            scope.deadline = loop.time() - 1
            assert scope.cancel_called
            assert current_effective_deadline() == -math.inf
            await asyncio.sleep(0)
            pytest.fail("not reached")
        assert scope.cancelled_caught
        with CancelScope() as scope:
            scope.deadline = -math.inf
            await asyncio.sleep(0)
            pytest.fail("not reached")
        assert scope.cancelled_caught
        assert cancelling() == 0

    run(main)


@pytest.mark.parametrize("move", ["past", "earlier", "later", "inf"])
def test_deadline_moved_from_another_task(run, move):
    async def victim(scope: CancelScope, ready: asyncio.Event, go: asyncio.Event):
        with scope:
            ready.set()
            await go.wait()
        return scope

    async def main():
        loop = asyncio.get_running_loop()
        start = math.inf if move in ("past", "earlier") else loop.time() + 0.01
        scope = CancelScope(deadline=start)
        ready, go = asyncio.Event(), asyncio.Event()
        task = asyncio.create_task(victim(scope, ready, go))
        await ready.wait()
        if move == "past":
            scope.deadline = loop.time() - 1
            await asyncio.sleep(0)  # the victim's wake-up is already queued
            expect_cancelled = True
        elif move == "earlier":
            scope.deadline = loop.time() + 0.01
            await asyncio.sleep(0.05)  # a timer due after the new deadline
            expect_cancelled = True
        else:
            scope.deadline = loop.time() + 1000 if move == "later" else math.inf
            await asyncio.sleep(0.05)  # a timer due after the old deadline
            expect_cancelled = False
        assert task.done() == expect_cancelled
        go.set()
        assert await task is scope
        assert scope.cancel_called == expect_cancelled
        assert scope.cancelled_caught == expect_cancelled
        assert task.cancelling() == 0

    run(main)


def test_cancel_before_enter(run):
    async def main():
        scope = CancelScope()
        scope.cancel("early")
        assert scope.cancel_called and not scope.cancelled_caught
        steps = []
        with scope:
            steps.append("entered")          # entering does not raise ...
            await asyncio.sleep(0)           # ... the first checkpoint does
            steps.append("not reached")
        assert steps == ["entered"]
        assert scope.cancelled_caught
        assert cancelling() == 0

    run(main)


def test_nested_deadlines_and_current_effective_deadline(run):
    async def main():
        loop = asyncio.get_running_loop()
        now = loop.time()
        assert current_effective_deadline() == math.inf
        with CancelScope(deadline=now + 100):
            assert current_effective_deadline() == now + 100
            with CancelScope(deadline=now + 200):
                assert current_effective_deadline() == now + 100
            with CancelScope(deadline=now + 50) as inner:
                assert current_effective_deadline() == now + 50
                inner.deadline = now + 150
                assert current_effective_deadline() == now + 100
            with CancelScope(deadline=now + 300, shield=True) as shielded:
                assert current_effective_deadline() == now + 300
                shielded.shield = False
                assert current_effective_deadline() == now + 100
            with CancelScope(shield=True):
                assert current_effective_deadline() == math.inf
            with CancelScope() as cancelled:
                cancelled.cancel()
                assert current_effective_deadline() == -math.inf
                with CancelScope(shield=True, deadline=now + 400):
                    assert current_effective_deadline() == now + 400
                with CancelScope():
                    assert current_effective_deadline() == -math.inf
            assert current_effective_deadline() == now + 100
        assert current_effective_deadline() == math.inf

    run(main)


def test_nested_deadlines_earliest_fires_and_its_scope_catches(run):
    async def main():
        loop = asyncio.get_running_loop()
        with CancelScope(deadline=loop.time() + 1000) as outer:
            with CancelScope(deadline=loop.time() + 0.01) as inner:
                await asyncio.sleep(1000)
            assert inner.cancelled_caught and not outer.cancel_called
        with CancelScope(deadline=loop.time() + 0.01) as outer:
            with CancelScope(deadline=loop.time() + 1000) as inner:
                await asyncio.sleep(1000)
        assert outer.cancelled_caught and not inner.cancel_called and not inner.cancelled_caught
        assert cancelling() == 0

    run(main)


def test_cancel_of_an_exited_scope_is_a_noop(run):
    async def main():
        loop = asyncio.get_running_loop()
        with CancelScope() as scope:
            await asyncio.sleep(0)
        scope.cancel()
        scope.deadline = loop.time() - 1
        scope.shield = True
        scope.shield = False
        await asyncio.sleep(0)
        await asyncio.sleep(0.001)
        assert not scope.cancelled_caught
        assert cancelling() == 0
        # An exited scope's deadline timer is gone: it never fires later.
        with CancelScope(deadline=loop.time() + 0.01) as timed:
            pass
        await asyncio.sleep(0.05)
        assert not timed.cancel_called

    run(main)


def test_cancel_of_a_scope_exited_in_another_task_is_a_noop(run):
    async def worker(scope: CancelScope, left: asyncio.Event, go: asyncio.Event):
        with scope:
            await asyncio.sleep(0)
        left.set()
        await go.wait()
        await asyncio.sleep(0)
        return "finished"

    async def main():
        scope, left, go = CancelScope(), asyncio.Event(), asyncio.Event()
        task = asyncio.create_task(worker(scope, left, go))
        await left.wait()
        scope.cancel()
        go.set()
        assert await task == "finished"
        assert task.cancelling() == 0

    run(main)


# -- fail_after / fail_at / move_on_after ---------------------------------------------


def test_fail_after_raises_timeout_error_for_its_own_deadline(run):
    async def main():
        loop = asyncio.get_running_loop()
        with pytest.raises(TimeoutError):
            with scopeloop.fail_after(0.01):
                await asyncio.sleep(1000)
        with pytest.raises(TimeoutError):
            with scopeloop.fail_after(0):
                await asyncio.sleep(0)
        with pytest.raises(TimeoutError):
            with scopeloop.fail_at(loop.time() - 1):
                await asyncio.sleep(0)
        with pytest.raises(TimeoutError):
            with scopeloop.fail_at(loop.time() + 1000) as scope:
                scope.deadline = loop.time() - 1
                await asyncio.sleep(0)
        assert cancelling() == 0

    run(main)


def test_fail_after_does_not_raise_for_other_cancellations(run):
    async def main():
        loop = asyncio.get_running_loop()
        # Cancelled by hand, not by its deadline: swallowed like any scope.
        with scopeloop.fail_after(1000) as scope:
            scope.cancel()
            await asyncio.sleep(0)
        assert scope.cancelled_caught
        # An enclosing deadline fires: the outer scope catches, no TimeoutError.
        with scopeloop.move_on_after(0.01) as outer:
            with scopeloop.fail_after(1000) as inner:
                await asyncio.sleep(1000)
        assert outer.cancelled_caught and not inner.cancelled_caught
        # Both deadlines passed, outer is the outermost cancelled one: it catches.
        with scopeloop.move_on_at(loop.time() - 1) as outer:
            with scopeloop.fail_at(loop.time() - 1) as inner:
                await asyncio.sleep(0)
        assert outer.cancelled_caught and not inner.cancelled_caught
        # A shielded fail_after inside a cancelled region catches its own deadline.
        with CancelScope() as outer:
            outer.cancel()
            with pytest.raises(TimeoutError):
                with scopeloop.fail_after(0, shield=True):
                    await asyncio.sleep(0)
        assert not outer.cancelled_caught  # the TimeoutError was caught, no checkpoint
        # No deadline reached, no cancel: nothing happens.
        with scopeloop.fail_after(1000) as scope:
            await asyncio.sleep(0)
        assert not scope.cancel_called
        assert cancelling() == 0

    run(main)


def test_move_on_after_none_and_fail_after_none(run):
    async def main():
        with scopeloop.move_on_after(None) as scope:
            assert scope.deadline == math.inf
            assert current_effective_deadline() == math.inf
            await asyncio.sleep(0.001)
        assert not scope.cancel_called
        with scopeloop.fail_after(None) as scope:
            assert scope.deadline == math.inf
            await asyncio.sleep(0)
        with CancelScope() as outer:
            outer.cancel()
            with scopeloop.move_on_after(None, shield=True) as scope:
                assert scope.shield
                await asyncio.sleep(0)   # shielded: no raise
        assert not scope.cancel_called

    run(main)


def test_move_on_after_deadline_relative_to_loop_time(run):
    async def main():
        loop = asyncio.get_running_loop()
        before = loop.time()
        with scopeloop.move_on_after(5) as scope:
            after = loop.time()
        assert before + 5 <= scope.deadline <= after + 5
        assert scopeloop.current_time() >= after

    run(main)


def test_move_on_after_counts_from_entering_and_can_be_made_before(run):
    early = scopeloop.move_on_after(0.05)  # made outside any loop
    assert "entry+0.050" in repr(early)

    async def main():
        loop = asyncio.get_running_loop()
        await asyncio.sleep(0.1)  # longer than the delay: it must not have started yet
        entered = loop.time()
        with early:
            assert entered + 0.05 <= early.deadline <= loop.time() + 0.05
            await scopeloop.sleep(10)
        assert early.cancelled_caught

    run(main)


def test_move_on_after_deadline_read_before_entering_is_fixed_then(run):
    async def main():
        loop = asyncio.get_running_loop()
        scope = scopeloop.fail_after(5)
        before = loop.time()
        deadline = scope.deadline  # fixed from this moment
        assert before + 5 <= deadline <= loop.time() + 5
        await asyncio.sleep(0.01)
        with scope:
            assert scope.deadline == deadline
        scope2 = scopeloop.move_on_after(5)
        scope2.deadline = loop.time() - 1  # an absolute deadline replaces the delay
        with scope2:
            await scopeloop.checkpoint()
        assert scope2.cancelled_caught

    run(main)


# -- the CancelledError says which scope and why ----------------------------------------


def _message(exc: BaseException) -> str:
    assert exc.args, "a scope's CancelledError carries a message"
    return str(exc.args[0])


def test_cancelled_error_names_scope_and_reason(run):
    async def main():
        loop = asyncio.get_running_loop()
        with CancelScope() as scope:
            scope.cancel("shutting down")
            with pytest.raises(CancelledError) as info:
                await asyncio.sleep(0)          # ready-task delivery
            assert f"{id(scope):x}" in _message(info.value)
            assert "shutting down" in _message(info.value)
            with pytest.raises(CancelledError) as info:
                await blocked_forever()         # blocked-task delivery
            assert f"{id(scope):x}" in _message(info.value)
            assert "shutting down" in _message(info.value)
        with CancelScope(deadline=loop.time() + 0.001) as scope:
            with pytest.raises(CancelledError) as info:
                await asyncio.sleep(1000)
            assert f"{id(scope):x}" in _message(info.value)
            assert "deadline exceeded" in _message(info.value)
        # Without a reason the message still names the scope.
        with CancelScope() as scope:
            scope.cancel()
            with pytest.raises(CancelledError) as info:
                await asyncio.sleep(0)
            assert f"{id(scope):x}" in _message(info.value)
        # The error names the scope that was cancelled, not an inner one.
        with CancelScope() as outer:
            with CancelScope() as inner:
                outer.cancel("outer reason")
                with pytest.raises(CancelledError) as info:
                    await asyncio.sleep(0)
                assert f"{id(outer):x}" in _message(info.value)
                assert f"{id(inner):x}" not in _message(info.value)

    run(main)


# -- tasks spawned into a cancelled group -----------------------------------------------


def test_task_spawned_into_cancelled_group_starts_and_raises_at_first_checkpoint(run):
    async def child(log: list[str]):
        log.append("started")
        try:
            await asyncio.sleep(0)
        except CancelledError:
            log.append(f"raised, cancelling={cancelling()}")
            raise
        log.append("not reached")

    async def shielded_child(log: list[str]):
        with CancelScope(shield=True):
            await asyncio.sleep(0)
            log.append("shielded child ran")
        await asyncio.sleep(0)
        log.append("not reached")

    async def main():
        log: list[str] = []
        async with scopeloop.create_task_group() as group:
            group.cancel_scope.cancel()
            group.start_soon(child, log)
            group.start_soon(shielded_child, log)
        assert sorted(log) == ["raised, cancelling=0", "shielded child ran", "started"]
        assert cancelling() == 0

    run(main)


def test_outer_scope_cancel_reaches_group_children_but_not_shielded_ones(run):
    async def child(log: list[str], name: str):
        try:
            await blocked_forever()
        except CancelledError:
            log.append(name)
            raise

    async def shielded(log: list[str], release: asyncio.Event):
        with CancelScope(shield=True):
            await release.wait()
            log.append("shielded done")

    async def main():
        log: list[str] = []
        release = asyncio.Event()
        with CancelScope() as outer:
            async with scopeloop.create_task_group() as group:
                group.start_soon(child, log, "a")
                group.start_soon(child, log, "b")
                group.start_soon(shielded, log, release)
                await scopeloop.wait_all_tasks_blocked()
                outer.cancel()
                try:
                    with CancelScope(shield=True):  # the host is in the cancelled region too
                        await scopeloop.wait_all_tasks_blocked()
                    assert sorted(log) == ["a", "b"]
                finally:
                    release.set()   # fail rather than hang if the shields do not hold
        assert sorted(log) == ["a", "b", "shielded done"]
        assert outer.cancelled_caught
        assert cancelling() == 0

    run(main)


def test_plain_create_task_does_not_inherit_the_scope(run):
    """Only task-group children start inside a scope; asyncio.create_task keeps its stock meaning."""
    async def plain():
        await asyncio.sleep(0)
        return "ran"

    async def main():
        with CancelScope() as scope:
            scope.cancel()
            task = asyncio.create_task(plain())
        assert await task == "ran"

    run(main)
