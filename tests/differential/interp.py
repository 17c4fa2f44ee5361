"""Run one program on one API and collect what every task observed.

Observations (``run_program``'s result) are keyed:

* ``actor<N>``: that task's records in order: each await's outcome (``"ok"`` or
  the normalised exception it raised), every scope and group exit as
  ``(cancel_called, cancelled_caught, exception leaving, cancelling())``, what
  ``start()`` returned or raised, items sent and received, and how the task ended;
* ``escaped``: the exception that left the program's root task;
* ``driver``: which driver steps took effect, and how the program was wound up;
* ``violations``: stream conservation failures (an item lost or duplicated, or
  received although its send raised); always compared, it must be empty;
* ``_stamps`` (not compared): when each record was made, in the run as a whole.

The driver runs each schedule step once every task is blocked.  Then it winds the
program up deterministically: it opens the gate of the lowest-numbered actor waiting
at one, again and again; when none waits and the program has not finished, it
cancels the scope around the root task, then sets every event, then closes every
stream's send side, then its receive side (so that no program can hang, shielded
or not); finally it drains each stream whose receive side is still open.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

from .model import (
    RELATIVE_KINDS,
    Cancel,
    Catch,
    Checkpoint,
    Close,
    Gate,
    Group,
    Probe,
    Program,
    Raise,
    Receive,
    Ref,
    Scope,
    Send,
    SetDeadline,
    SetEvent,
    SetShield,
    Spawn,
    Started,
    Stmt,
    WaitEvent,
    walk,
)

_INF = math.inf


class _Log(list):  # type: ignore[type-arg]
    """One actor's records, each stamped with its place in the whole run (for the
    catalogue, which looks for the first difference in time; never compared)."""

    def __init__(self, clock: list[int]) -> None:
        super().__init__()
        self.clock = clock
        self.stamps: list[int] = []

    def append(self, record: Any) -> None:
        self.clock[0] += 1
        self.stamps.append(self.clock[0])
        super().append(record)


class _Run:
    def __init__(self, api: Any, prog: Program) -> None:
        self.api = api
        self.prog = prog
        clock = [0]
        self.obs: dict[int, _Log] = {a: _Log(clock) for a in prog.actors}
        self.driver: list[Any] = []
        self.gates: dict[int, Any] = {}
        self.gate_count: Counter[int] = Counter()
        self.entered: set[int] = set()
        self.group_scopes: dict[int, Any] = {}
        self.open_groups: dict[int, Any] = {}
        self.sent_ok: list[list[int]] = [[] for _ in prog.streams]
        self.sent_failed: list[list[int]] = [[] for _ in prog.streams]
        self.received: list[list[int]] = [[] for _ in prog.streams]
        self.recv_closed = [False for _ in prog.streams]
        self.finished = False
        self.escaped: Any = None

    # -- the program ----------------------------------------------------------------

    async def main(self) -> None:
        api = self.api
        self.scopes = {sid: api.scope(kind, shield)
                       for sid, (kind, shield) in self.prog.scopes.items()}
        self.events = [api.event() for _ in range(self.prog.events)]
        self.streams = [api.stream(size) for size in self.prog.streams]
        self.root_scope = api.scope("plain", False)
        async with api.open_group() as harness:
            harness.start_soon(self.root)
            await self.drive()
        self.drain()

    async def root(self) -> None:
        try:
            with self.root_scope:
                await self.actor(0)
        except BaseException as exc:  # recorded, and the harness must not see it
            self.escaped = self.api.norm(exc)
        self.finished = True

    async def actor(self, actor: int, task_status: Any = None) -> None:
        rec = self.obs[actor].append
        try:
            await self.body(actor, self.prog.actors[actor], task_status)
        except BaseException as exc:
            rec(("end", self.api.norm(exc), self.api.cancelling()))
            raise
        rec(("end", None, self.api.cancelling()))

    async def body(self, actor: int, body: list[Stmt], status: Any) -> None:
        for stmt in body:
            await self.stmt(actor, stmt, status)

    async def stmt(self, actor: int, s: Stmt, status: Any) -> None:
        api = self.api
        rec = self.obs[actor].append
        if isinstance(s, Gate):
            n = self.gate_count[actor]
            self.gate_count[actor] += 1
            gate = self.gates[actor] = api.event()
            try:
                await gate.wait()
            except BaseException as exc:
                rec(("gate", n, api.norm(exc)))
                raise
            finally:
                if self.gates.get(actor) is gate:
                    del self.gates[actor]
            rec(("gate", n, "ok"))
        elif isinstance(s, Checkpoint):
            await self.awaited(actor, ("checkpoint",), api.checkpoint(s.how))
        elif isinstance(s, Scope):
            scope = self.scopes[s.sid]
            try:
                with scope:
                    self.entered.add(s.sid)
                    await self.body(actor, s.body, status)
                api.fail_check(s.kind, scope)
            except BaseException as exc:
                rec(("exit", s.sid, scope.cancel_called, scope.cancelled_caught,
                     api.norm(exc), api.cancelling()))
                raise
            rec(("exit", s.sid, scope.cancel_called, scope.cancelled_caught, None,
                 api.cancelling()))
        elif isinstance(s, Group):
            scope = None
            try:
                async with api.open_group() as group:
                    scope = self.group_scopes[s.gid] = api.group_scope(group)
                    self.open_groups[s.gid] = group
                    await self.body(actor, s.body, status)
            except BaseException as exc:
                self.open_groups.pop(s.gid, None)
                rec(("gexit", s.gid, scope and scope.cancel_called,
                     scope and scope.cancelled_caught, api.norm(exc), api.cancelling()))
                raise
            self.open_groups.pop(s.gid, None)
            rec(("gexit", s.gid, scope.cancel_called, scope.cancelled_caught, None,
                 api.cancelling()))
        elif isinstance(s, Spawn):
            group = self.open_groups[s.gid]  # open: we are in its body
            if s.via_start:
                try:
                    value = await group.start(self.actor, s.actor)
                except BaseException as exc:
                    rec(("start", s.actor, "raised", api.norm(exc)))
                    raise
                rec(("start", s.actor, "returned", value))
            else:
                group.start_soon(self.actor, s.actor)
                rec(("start_soon", s.actor))
        elif isinstance(s, Started):
            try:
                (status if status is not None else api.ignored).started(actor)
            except BaseException as exc:
                rec(("started", api.norm(exc)))
                raise
            rec(("started", None))
        elif isinstance(s, Cancel):
            target = self.resolve(s.ref)
            if target is not None:
                target.cancel()
            rec(("cancel", s.ref, target is not None))
        elif isinstance(s, SetDeadline):
            rec(("deadline", s.ref, self.set_deadline(s.ref)))
        elif isinstance(s, SetShield):
            target = self.resolve(s.ref)
            if target is not None:
                target.shield = s.value
            rec(("shield", s.ref, s.value, target is not None))
        elif isinstance(s, Probe):
            target = self.resolve(s.ref)
            if target is None or (s.ref is not None and s.ref[0] == "s"
                                  and s.ref[1] not in self.entered):
                # Not compared before entry: Trio's cancel_called says True for a
                # scope not entered yet whose deadline has passed (scopeloop: False
                # until it is entered, when both cancel it).
                rec(("probe", s.ref, "not entered"))
            else:
                rec(("probe", s.ref, target.cancel_called, target.cancelled_caught))
        elif isinstance(s, SetEvent):
            self.events[s.eid].set()
            rec(("set", s.eid))
        elif isinstance(s, WaitEvent):
            await self.awaited(actor, ("wait", s.eid), self.events[s.eid].wait())
        elif isinstance(s, Send):
            await self.send(actor, s)
        elif isinstance(s, Receive):
            await self.receive(actor, s)
        elif isinstance(s, Close):
            handle = self.streams[s.stream][0 if s.side == "send" else 1]
            if s.side == "recv":
                self.recv_closed[s.stream] = True
            if s.aclose:
                await self.awaited(actor, ("aclose", s.stream, s.side), handle.aclose())
            else:
                handle.close()
                rec(("close", s.stream, s.side))
        elif isinstance(s, Raise):
            raise ValueError(s.tag)
        elif isinstance(s, Catch):
            try:
                await self.body(actor, s.body, status)
            except api.Cancelled:
                rec(("caught",))
                if s.recheck:
                    await self.awaited(actor, ("recheck",), api.checkpoint("checkpoint"))
        else:  # pragma: no cover
            raise AssertionError(f"unknown statement {s!r}")

    async def awaited(self, actor: int, what: tuple[Any, ...], awaitable: Any) -> None:
        try:
            await awaitable
        except BaseException as exc:
            self.obs[actor].append((*what, self.api.norm(exc)))
            raise
        self.obs[actor].append((*what, "ok"))

    async def send(self, actor: int, s: Send) -> None:
        handle = self.streams[s.stream][0]
        try:
            if s.nowait:
                handle.send_nowait(s.item)
            else:
                await handle.send(s.item)
        except BaseException as exc:
            self.sent_failed[s.stream].append(s.item)
            self.obs[actor].append(("send", s.stream, s.item, self.api.norm(exc)))
            if not isinstance(exc, Exception):
                raise  # a cancellation; stream errors are only recorded
            return
        self.sent_ok[s.stream].append(s.item)
        self.obs[actor].append(("send", s.stream, s.item, "ok"))

    async def receive(self, actor: int, s: Receive) -> None:
        handle = self.streams[s.stream][1]
        try:
            item = handle.receive_nowait() if s.nowait else await handle.receive()
        except BaseException as exc:
            self.obs[actor].append(("recv", s.stream, self.api.norm(exc)))
            if not isinstance(exc, Exception):
                raise
            return
        self.received[s.stream].append(item)
        self.obs[actor].append(("recv", s.stream, "item", item))

    def resolve(self, ref: Ref | None) -> Any:
        if ref is None:
            return None
        return self.scopes[ref[1]] if ref[0] == "s" else self.group_scopes.get(ref[1])

    def set_deadline(self, ref: Ref | None) -> bool:
        target = self.resolve(ref)
        if target is None:
            return False
        assert ref is not None
        if ref[0] == "s" and ref[1] not in self.entered \
                and self.prog.scopes[ref[1]][0] in RELATIVE_KINDS:
            return False  # no absolute deadline before entry (Trio: deprecated)
        self.api.set_deadline(target, -_INF)
        return True

    # -- the driver -------------------------------------------------------------------

    async def drive(self) -> None:
        api = self.api
        for step in self.prog.schedule:
            await api.wait_all_tasks_blocked()
            kind, ref = step[0], step[1]
            if kind == "open":
                gate = self.gates.pop(ref, None)
                if gate is not None:
                    gate.set()
                self.driver.append((kind, ref, gate is not None))
            elif kind == "cancel":
                target = self.resolve(ref)
                if target is not None:
                    target.cancel()
                self.driver.append((kind, ref, target is not None))
            elif kind == "deadline":
                self.driver.append((kind, ref, self.set_deadline(ref)))
            else:
                target = self.resolve(ref)
                if target is not None:
                    target.shield = step[2]
                self.driver.append((kind, ref, step[2], target is not None))
        escalation = 0
        while True:
            await api.wait_all_tasks_blocked()
            if self.finished:
                break
            if self.gates:
                actor = min(self.gates)
                self.gates.pop(actor).set()
                continue
            escalation += 1
            self.driver.append(("wind-up", escalation))
            if escalation == 1:
                self.root_scope.cancel()
            elif escalation == 2:
                for event in self.events:
                    event.set()
            elif escalation == 3:
                for send, _ in self.streams:
                    send.close()
            elif escalation == 4:
                for i, (_, receive) in enumerate(self.streams):
                    self.recv_closed[i] = True
                    receive.close()
            else:
                raise AssertionError("the program cannot finish: " + repr(self.obs))

    def drain(self) -> None:
        for i, (_, receive) in enumerate(self.streams):
            if self.recv_closed[i]:
                continue
            while True:
                try:
                    self.received[i].append(receive.receive_nowait())
                except Exception:
                    break

    def violations(self) -> list[str]:
        """Items lost or duplicated by the streams."""
        found = []
        for i in range(len(self.prog.streams)):
            got = Counter(self.received[i])
            if any(n > 1 for n in got.values()):
                found.append(f"stream{i}: duplicated {sorted(k for k, n in got.items() if n > 1)}")
            failed = set(got) & set(self.sent_failed[i])
            if failed:
                found.append(f"stream{i}: received {sorted(failed)} whose send raised")
            unsent = set(got) - set(self.sent_ok[i]) - set(self.sent_failed[i])
            if unsent:
                found.append(f"stream{i}: received {sorted(unsent)}, never sent")
            if not self.recv_closed[i]:
                lost = set(self.sent_ok[i]) - set(got)
                if lost:
                    found.append(f"stream{i}: lost {sorted(lost)} (sent, never received)")
        return found


def run_program(api: Any, prog: Program) -> dict[str, Any]:
    """Run ``prog`` on ``api``; return its observations (see the module docstring)."""
    run = _Run(api, prog)
    api.run(run.main)
    result: dict[str, Any] = {f"actor{a}": tuple(obs) for a, obs in sorted(run.obs.items())}
    result["escaped"] = run.escaped
    result["driver"] = tuple(run.driver)
    result["violations"] = tuple(run.violations())
    result["_stamps"] = {f"actor{a}": obs.stamps for a, obs in run.obs.items()}
    return result


__all__ = ["run_program", "walk"]
