"""Property: random programs of cancel scopes behave as a small reference model says.

A program is a tree of statements run by one task ("main"):

* ``Scope(shield, deadline, body)``: ``with CancelScope(...)``, deadline inf, already
  passed, or far in the future;
* ``Timeout(expired, catch, body)``: ``async with asyncio.timeout(0 or 1000)``,
  optionally catching its TimeoutError right there;
* ``Checkpoint(mode, remote, catch)``: ``await asyncio.sleep(0)`` (main is ready to
  run, no future) or ``await`` on a future (main is blocked); while main is
  suspended, a helper task applies the ``remote`` operations to it; ``catch`` wraps
  the checkpoint in ``try/except CancelledError``;
* ``Op``: done by main itself: cancel a scope, shield on/off, deadline to the past,
  far future or inf (any scope created so far, including exited ones), native
  ``task.cancel()`` of main, native ``task.uncancel()``.

Remote operations are the same scope operations plus a native ``cancel()`` of
main, done from the helper task.  Everything is driven by futures: no real time
passes (deadlines are past, or 1000 s away).

After every statement, every scope exit and every checkpoint the test compares the
real run with the model (``Model``), which encodes the contract of DESIGN §3.1,
§3.2 and §4.1-4.2:

* which checkpoints raise: a checkpoint raises iff main is effectively cancelled
  when it suspends, or a native request is pending, or an asyncio.timeout(0)
  entered since fires, or a remote operation makes main effectively cancelled or
  cancels it natively while it is suspended (a delivered interrupt stays
  delivered); the error is the scope's or a native one (either is allowed only
  when both kinds of cause are present);
* which scope catches: a cancelled scope swallows a CancelledError iff its region
  interrupted the task (a checkpoint raised for it there, or in a cancelled scope
  inside it that let the error through), no native request arrived since it was
  entered (``cancelling()`` not above its value at entry; an ``uncancel()`` lowers
  that value) and it is the outermost cancelled scope of its region (shielded, or
  its parent is not effectively cancelled).  So native cancellations are never
  swallowed, but an interrupt that a native request left behind after
  ``uncancel()`` withdrew it (before 3.13) is, as on 3.13, where it is gone.
  asyncio.timeout's TimeoutError is swallowed iff made from a scope's
  interruption.  Whether the region interrupted the task is unknown to the model
  when a native request raced with it in one checkpoint: either outcome then;
* asyncio.timeout keeps its stock meaning (fires at the next suspension; on exit
  it uncancels once and turns a CancelledError into TimeoutError iff the count is
  back at its value at entry);
* ``cancelling()`` equals native cancels minus native uncancels at every step
  (balance) and nothing of a scope's cancellation survives leaving it
  (withdrawal: later checkpoints raise only as the model says);
* ``cancel_called``, ``cancelled_caught`` and ``current_effective_deadline()``.

On 3.13 ``uncancel()`` to zero also drops a pending native request, as in stock asyncio.
"""

from __future__ import annotations

import asyncio
import math
import sys
from dataclasses import dataclass, field
from typing import Any, Union

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context, event

import scopeloop
from scopeloop import CancelScope
from scopeloop.task import ScopeCancelMessage

CancelledError = asyncio.CancelledError
UNCANCEL_CLEARS_PENDING = sys.version_info >= (3, 13)

# -- programs ---------------------------------------------------------------------------

DEADLINES = ("inf", "past", "far")
SCOPE_OPS = ("cancel", "shield_on", "shield_off", "deadline_past", "deadline_far",
             "deadline_inf")
LOCAL_OPS = SCOPE_OPS + ("native_cancel", "uncancel")
REMOTE_OPS = SCOPE_OPS + ("native_cancel",)


@dataclass(frozen=True)
class Op:
    kind: str
    target: int = 0   # index (modulo) into the scopes created so far


@dataclass(frozen=True)
class Checkpoint:
    mode: str                     # "ready" or "blocked"
    remote: tuple[Op, ...] = ()
    catch: bool = False


@dataclass(frozen=True)
class Scope:
    shield: bool
    deadline: str
    body: tuple[Any, ...]


@dataclass(frozen=True)
class Timeout:
    expired: bool
    catch: bool
    body: tuple[Any, ...]


Stmt = Union[Op, Checkpoint, Scope, Timeout]

_checkpoints = st.builds(
    Checkpoint, mode=st.sampled_from(["ready", "blocked"]),
    remote=st.lists(st.builds(Op, kind=st.sampled_from(REMOTE_OPS), target=st.integers(0, 7)),
                    max_size=2).map(tuple),
    catch=st.booleans())
_ops = st.builds(Op, kind=st.sampled_from(LOCAL_OPS), target=st.integers(0, 7))


def _blocks(depth: int) -> st.SearchStrategy[tuple[Any, ...]]:
    leaf = st.one_of(_checkpoints, _checkpoints, _ops)
    if depth == 0:
        return st.lists(leaf, max_size=4).map(tuple)
    inner = _blocks(depth - 1)
    nested = st.one_of(
        st.builds(Scope, shield=st.booleans(), deadline=st.sampled_from(DEADLINES), body=inner),
        st.builds(Scope, shield=st.booleans(), deadline=st.sampled_from(DEADLINES), body=inner),
        st.builds(Timeout, expired=st.booleans(), catch=st.booleans(), body=inner))
    return st.lists(st.one_of(leaf, nested), max_size=5).map(tuple)


programs = _blocks(3)


# -- the reference model ---------------------------------------------------------------


@dataclass
class MScope:
    shield: bool
    deadline: float
    snapshot: int                 # cancelling() at entry (lowered by uncancel())
    cancel_called: bool = False
    interrupted: str = "no"       # its region interrupted the task: no, maybe, yes


@dataclass
class MTimeout:
    expired: bool
    snapshot: int
    fired: bool = False


@dataclass
class Model:
    """The contract, for one task: its scopes, its native count, its pending request."""

    now: float
    scopes: list[MScope] = field(default_factory=list)     # every scope created
    stack: list[MScope] = field(default_factory=list)      # the entered ones, outermost first
    timeouts: list[MTimeout] = field(default_factory=list)  # active asyncio.timeouts
    native: int = 0               # cancelling()
    native_pending: bool = False  # a native request not yet delivered
    in_flight: str | None = None  # the kind of the exception propagating, if any

    # state queries

    def effectively_cancelled(self, stack: list[MScope] | None = None) -> bool:
        for scope in reversed(self.stack if stack is None else stack):
            if scope.cancel_called:
                return True
            if scope.shield:
                return False
        return False

    def region(self) -> list[MScope]:
        """The cancelled scopes whose cancellation reaches the task, innermost first."""
        cancelled = []
        for scope in reversed(self.stack):
            if scope.cancel_called:
                cancelled.append(scope)
            if scope.shield:
                break
        return cancelled

    def interrupted(self, how: str) -> None:
        """A checkpoint raised (``how``: surely, or maybe) for the region's cancellation."""
        for scope in self.region():
            if scope.interrupted != "yes":
                scope.interrupted = how

    def effective_deadline(self) -> float:
        deadline = math.inf
        for scope in reversed(self.stack):
            if scope.cancel_called:
                return -math.inf
            deadline = min(deadline, scope.deadline)
            if scope.shield:
                break
        return deadline

    def deadline_value(self, name: str) -> float:
        return {"inf": math.inf, "past": self.now - 1, "far": self.now + 1000}[name]

    # statements

    def enter(self, shield: bool, deadline: str) -> MScope:
        scope = MScope(shield, self.deadline_value(deadline), self.native,
                       cancel_called=deadline == "past")
        self.scopes.append(scope)
        self.stack.append(scope)
        return scope

    def exit(self, scope: MScope, kind: str | None) -> bool | None:
        """Leave ``scope`` with ``kind`` propagating; return whether it catches
        (None: either; then call ``caught()`` with what happened)."""
        assert self.stack.pop() is scope
        catches: bool | None = False
        if (kind is not None and scope.cancel_called and self.native <= scope.snapshot
                and (scope.shield or not self.effectively_cancelled())):
            if kind in ("scope", "timeout:scope"):
                catches = True
            elif kind == "native":
                catches = {"yes": True, "no": False, "maybe": None}[scope.interrupted]
        if catches is not None:
            self.caught(scope, catches)
        return catches

    def caught(self, scope: MScope, catches: bool) -> None:
        if catches:
            self.in_flight = None
        elif self.in_flight is not None and scope.cancel_called and scope.interrupted != "no":
            # The error leaves it: so does the knowledge, for the scope that catches.
            self.interrupted(scope.interrupted)

    def timeout_enter(self, expired: bool) -> MTimeout:
        timeout = MTimeout(expired, self.native)
        self.timeouts.append(timeout)
        return timeout

    def timeout_exit(self, timeout: MTimeout, kind: str | None) -> None:
        assert self.timeouts.pop() is timeout
        if timeout.fired:
            self.uncancel()
            if kind in ("scope", "native") and self.native <= timeout.snapshot:
                self.in_flight = f"timeout:{kind}"

    def uncancel(self) -> int:
        if self.native:
            self.native -= 1
            for scope in self.stack:
                scope.snapshot = min(scope.snapshot, self.native)
            if self.native == 0 and UNCANCEL_CLEARS_PENDING:
                self.native_pending = False
        return self.native

    def apply(self, op: Op) -> None:
        if op.kind == "native_cancel":
            self.native += 1
            self.native_pending = True
            return
        if op.kind == "uncancel":
            self.uncancel()
            return
        if not self.scopes:
            return
        scope = self.scopes[op.target % len(self.scopes)]
        entered = any(s is scope for s in self.stack)
        if op.kind == "cancel":
            scope.cancel_called = True
        elif op.kind in ("shield_on", "shield_off"):
            scope.shield = op.kind == "shield_on"
        else:
            scope.deadline = self.deadline_value(op.kind.removeprefix("deadline_"))
            if entered and op.kind == "deadline_past":
                scope.cancel_called = True

    def checkpoint(self, remote: tuple[Op, ...]) -> set[str]:
        """Suspend, let ``remote`` happen; return the possible kinds of error (empty: none)."""
        causes = set()
        for timeout in self.timeouts:
            if timeout.expired and not timeout.fired:
                timeout.fired = True
                self.native += 1
                causes.add("native")
        if self.native_pending:
            causes.add("native")
        if self.effectively_cancelled():
            causes.add("scope")
        for op in remote:
            self.apply(op)
            if op.kind == "native_cancel":
                causes.add("native")
            elif self.effectively_cancelled():
                causes.add("scope")   # delivered at once; a later shield cannot undo it
        if causes:
            self.native_pending = False
        return causes


# -- running a program for real, checking against the model at every step -------------------


def note(what: str) -> None:
    """Count what happened, for ``pytest --hypothesis-show-statistics``."""
    if currently_in_test_context():
        event(what)


def kind_of(exc: BaseException) -> str:
    """'scope' or 'native' for a CancelledError, 'timeout:<cause>' for asyncio.timeout's."""
    if isinstance(exc, CancelledError):
        return "scope" if exc.args and isinstance(exc.args[0], ScopeCancelMessage) else "native"
    if type(exc) is TimeoutError and isinstance(exc.__cause__, CancelledError):
        return "timeout:" + kind_of(exc.__cause__)
    raise exc  # an assertion failure or a bug: not part of the program


class Runner:
    def __init__(self, loop: asyncio.AbstractEventLoop, task: asyncio.Task[Any]) -> None:
        self.loop = loop
        self.task = task
        self.model = Model(now=loop.time())
        self.scopes: list[CancelScope] = []
        self.mailbox: asyncio.Future[Any] = loop.create_future()
        self.log: list[str] = []

    # the helper task: applies remote operations while main is suspended

    async def helper(self, box: asyncio.Future[Any]) -> None:
        while True:
            ops, waiter, box = await box
            if ops is None:
                return
            for op in ops:
                self.apply(op)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

    def post(self, ops: Any, waiter: asyncio.Future[None] | None) -> None:
        box, self.mailbox = self.mailbox, self.loop.create_future()
        box.set_result((ops, waiter, self.mailbox))

    # operations, for real

    def apply(self, op: Op) -> None:
        if op.kind == "native_cancel":
            assert self.task.cancel()
            return
        if op.kind == "uncancel":
            self.task.uncancel()
            return
        if not self.scopes:
            return
        scope = self.scopes[op.target % len(self.scopes)]
        if op.kind == "cancel":
            scope.cancel()
        elif op.kind in ("shield_on", "shield_off"):
            scope.shield = op.kind == "shield_on"
        else:
            scope.deadline = self.model.deadline_value(op.kind.removeprefix("deadline_"))

    def check(self, where: str) -> None:
        assert self.task.cancelling() == self.model.native, (where, self.log)
        assert scopeloop.current_effective_deadline() == self.model.effective_deadline(), \
            (where, self.log)

    async def block(self, body: tuple[Any, ...]) -> None:
        for stmt in body:
            await self.statement(stmt)
            self.check(f"after {stmt}")

    async def statement(self, stmt: Stmt) -> None:
        if isinstance(stmt, Op):
            self.model.apply(stmt)
            self.apply(stmt)
            self.log.append(stmt.kind)
        elif isinstance(stmt, Checkpoint):
            await self.checkpoint(stmt)
        elif isinstance(stmt, Scope):
            await self.scope(stmt)
        else:
            await self.timeout(stmt)

    async def checkpoint(self, stmt: Checkpoint) -> None:
        kinds = self.model.checkpoint(stmt.remote)
        waiter = self.loop.create_future() if stmt.mode == "blocked" else None
        if stmt.remote or waiter is not None:
            self.post(stmt.remote, waiter)
        try:
            if waiter is None:
                await asyncio.sleep(0)
            else:
                await waiter
        except CancelledError as exc:
            kind = kind_of(exc)
            self.log.append(f"checkpoint raised {kind}")
            assert kind in kinds, (kinds, self.log)
            note(f"checkpoint raised {kind}" + (" (either allowed)" if len(kinds) > 1 else ""))
            self.model.in_flight = kind
            if "scope" in kinds:
                self.model.interrupted("yes" if kind == "scope" or len(kinds) == 1 else "maybe")
            if not stmt.catch:
                raise
            self.model.in_flight = None
        else:
            self.log.append("checkpoint passed")
            assert not kinds, (kinds, self.log)

    async def scope(self, stmt: Scope) -> None:
        mscope = self.model.enter(stmt.shield, stmt.deadline)
        scope = CancelScope(shield=stmt.shield, deadline=self.model.deadline_value(stmt.deadline))
        self.scopes.append(scope)
        kind_in: str | None = None
        error: BaseException | None = None
        try:
            with scope:
                self.check("scope entered")
                try:
                    await self.block(stmt.body)
                except BaseException as exc:
                    kind_in = kind_of(exc)
                    raise
        except BaseException as exc:
            kind_of(exc)
            error = exc
        assert kind_in == self.model.in_flight, (kind_in, self.model.in_flight, self.log)
        catches = self.model.exit(mscope, kind_in)
        self.log.append(f"scope exit with {kind_in}: caught={scope.cancelled_caught}")
        if catches is None:
            catches = scope.cancelled_caught
            self.model.caught(mscope, catches)
            note(f"either allowed: caught={catches}")
        assert scope.cancelled_caught == catches, self.log
        assert (error is None) == (kind_in is None or catches), self.log
        assert error is None or kind_of(error) == kind_in
        assert scope.cancel_called == mscope.cancel_called, self.log
        if catches:
            note("a scope caught " + str(kind_in))
        self.check("scope exited")
        if error is not None:
            raise error

    async def timeout(self, stmt: Timeout) -> None:
        mtimeout = self.model.timeout_enter(stmt.expired)
        kind_in: str | None = None
        error: BaseException | None = None
        try:
            async with asyncio.timeout(0 if stmt.expired else 1000):
                self.check("timeout entered")
                try:
                    await self.block(stmt.body)
                except BaseException as exc:
                    kind_in = kind_of(exc)
                    raise
        except BaseException as exc:
            kind_of(exc)
            error = exc
        assert kind_in == self.model.in_flight, (kind_in, self.model.in_flight, self.log)
        self.model.timeout_exit(mtimeout, kind_in)
        kind_out = None if error is None else kind_of(error)
        self.log.append(f"timeout exit with {kind_in} -> {kind_out}")
        assert kind_out == self.model.in_flight, (kind_out, self.model.in_flight, self.log)
        self.check("timeout exited")
        if error is not None:
            if stmt.catch and kind_out is not None and kind_out.startswith("timeout:"):
                note("TimeoutError caught")
                self.model.in_flight = None
                return
            raise error


async def run_program(program: tuple[Any, ...]) -> None:
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    runner = Runner(loop, task)
    helper = asyncio.create_task(runner.helper(runner.mailbox))
    # Let the helper block on its mailbox first, so that it only ever runs when main
    # posts to it (see test_scope_semantics::test_await_suspending_in_cancelled_scope_
    # raises_even_if_its_future_completes_first for what an earlier step would do).
    await asyncio.sleep(0)
    try:
        await runner.block(program)
    except BaseException as exc:
        kind = kind_of(exc)
        assert kind == runner.model.in_flight, (kind, runner.model.in_flight, runner.log)
        note(f"{kind} escaped the program")
        runner.model.in_flight = None
    assert runner.model.stack == [] and runner.model.timeouts == []
    runner.check("program done")
    # Withdrawal: outside every scope only a pending native request may still raise.
    await runner.checkpoint(Checkpoint("blocked", catch=True))
    runner.check("final checkpoint")
    runner.post(None, None)
    await helper


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(program=programs)
def test_random_scope_programs_follow_the_model(backend, program):
    scopeloop.run(run_program, program, backend=backend)


# -- fixed examples: the interesting corners, always run -------------------------------------


def test_model_examples(backend):
    examples = [
        # a scope cancelled from inside, caught by the scope
        (Scope(False, "inf", (Op("cancel"), Checkpoint("ready"))),),
        # cancelled from the helper while blocked; level-triggered after a catch
        (Scope(False, "inf", (Checkpoint("blocked", (Op("cancel"),), catch=True),
                              Checkpoint("ready"))),),
        # native cancel and scope cancel together: never swallowed
        (Scope(False, "inf", (Checkpoint("ready", (Op("cancel"), Op("native_cancel"))),)),),
        (Scope(False, "inf", (Op("native_cancel"), Op("cancel"), Checkpoint("blocked"))),),
        # a shield holds; un-shielding from the helper delivers
        (Scope(False, "past", (Scope(True, "inf", (
            Checkpoint("blocked"), Checkpoint("blocked", (Op("shield_off", 1),)))),)),),
        # native cancel, then asyncio.timeout(0): the native request survives
        (Op("native_cancel"), Timeout(True, True, (Checkpoint("ready"),)), Checkpoint("ready")),
        # a scope and asyncio.timeout(0) in the same iteration
        (Scope(False, "inf", (Timeout(True, False, (Op("cancel"), Checkpoint("blocked"))),)),),
        # cancel + uncancel of a native request while a scope's cancellation was just caught
        (Scope(False, "inf", (Op("cancel"), Checkpoint("ready", catch=True),
                              Op("native_cancel"), Op("uncancel"))), Checkpoint("ready")),
    ]
    for program in examples:
        scopeloop.run(run_program, program, backend=backend)
