"""Small structured-concurrency programs, and a hypothesis strategy that makes them.

A program is a set of *actors* (tasks), each running a script of statements.
Actor 0 is the root; every other actor is spawned by exactly one ``Spawn``
statement (``start_soon`` or ``start()``) in the body of a task group of the
actor that spawns it (into the innermost group, or one enclosing it).

Scripts never race on their own: an actor runs only when the *driver* lets it.
``Gate`` waits on an event of the actor's own that only the driver sets, and the
driver sets one gate at a time, after every task is blocked
(``wait_all_tasks_blocked``).  Everything an actor does between two gates happens
in one step; what it changes for other tasks (a cancelled scope, a set event, an
item sent) is seen by them after that step.  Programs can still race (two tasks
woken by one cancel both sending, say); ``compare`` finds those by running Trio
under several scheduler seeds and compares only what does not vary.

Time: scopeloop has no mock clock, so every deadline is one that decides itself
without a clock race: already passed when the scope is entered (``move_on_at(-inf)``,
``fail_after(0)``...), never (``inf``), or moved to ``-inf`` by a statement or a
driver step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Union

from hypothesis import strategies as st

# Scope kinds: (constructor family, deadline).  "past" = -inf, "zero" = relative 0
# (passed by the time anything reads the clock), "never" = inf.
SCOPE_KINDS = ("plain", "move_on_past", "fail_past", "move_on_zero", "fail_zero",
               "move_on_never", "fail_never")
# Kinds whose deadline is relative to entry: their deadline is only set once entered.
RELATIVE_KINDS = ("move_on_zero", "fail_zero", "move_on_never", "fail_never")
FAIL_KINDS = ("fail_past", "fail_zero", "fail_never")

# A reference to a cancel scope: ("s", sid) a Scope statement's scope, or
# ("g", gid) the cancel scope of a Group statement's task group.
Ref = tuple[str, int]


@dataclass
class Gate:
    """Wait until the driver opens this actor's gate (a checkpoint that blocks)."""


@dataclass
class Checkpoint:
    """``await checkpoint()`` or ``await sleep(0)``: a schedule and cancel point."""
    how: str = "checkpoint"


@dataclass
class Scope:
    """``with <kind scope>(shield=...):`` body; records its flags on exit."""
    sid: int
    kind: str
    shield: bool
    body: list[Stmt]


@dataclass
class Group:
    """``async with create_task_group():`` body; records its scope's flags on exit."""
    gid: int
    body: list[Stmt]


@dataclass
class Spawn:
    """Spawn ``actor`` into group ``gid`` with start_soon, or with ``await start()``."""
    actor: int
    gid: int
    via_start: bool


@dataclass
class Started:
    """``task_status.started(<actor id>)``."""


@dataclass
class Cancel:
    """``scope.cancel()`` of any scope of the program (nothing if not made yet)."""
    ref: Ref | None = None


@dataclass
class SetDeadline:
    """``scope.deadline = -inf``."""
    ref: Ref | None = None


@dataclass
class SetShield:
    """``scope.shield = value``."""
    value: bool
    ref: Ref | None = None


@dataclass
class Probe:
    """Record ``scope.cancel_called`` and ``cancelled_caught`` (no await)."""
    ref: Ref | None = None


@dataclass
class SetEvent:
    eid: int


@dataclass
class WaitEvent:
    eid: int


@dataclass
class Send:
    """``await send(item)`` or ``send_nowait(item)``; stream errors are recorded, not raised."""
    stream: int
    item: int
    nowait: bool


@dataclass
class Receive:
    stream: int
    nowait: bool


@dataclass
class Close:
    """Close one side of a stream: ``close()`` or ``await aclose()``."""
    stream: int
    side: str  # "send" | "recv"
    aclose: bool


@dataclass
class Raise:
    """``raise ValueError(tag)``."""
    tag: str


@dataclass
class Catch:
    """``try: body / except Cancelled:`` record, then (if ``recheck``) checkpoint again."""
    body: list[Stmt]
    recheck: bool


Stmt = Union[Gate, Checkpoint, Scope, Group, Spawn, Started, Cancel, SetDeadline,
             SetShield, Probe, SetEvent, WaitEvent, Send, Receive, Close, Raise, Catch]

# Driver steps (run one at a time, each after every task is blocked):
#   ("open", actor)  ("cancel", ref)  ("deadline", ref)  ("shield", ref, value)
Step = tuple[Any, ...]


@dataclass
class Program:
    actors: dict[int, list[Stmt]]
    scopes: dict[int, tuple[str, bool]]  # sid -> (kind, shield)
    groups: list[int]
    streams: list[float]  # max_buffer_size of each stream
    events: int
    schedule: list[Step] = field(default_factory=list)

    def refs(self) -> list[Ref]:
        return [("s", sid) for sid in self.scopes] + [("g", gid) for gid in self.groups]


def walk(body: list[Stmt]) -> Any:
    """Every statement of ``body``, nested ones included (not into spawned actors)."""
    for stmt in body:
        yield stmt
        if isinstance(stmt, (Scope, Group, Catch)):
            yield from walk(stmt.body)


_MAX_ACTORS = 6
_MAX_STMTS = 40
_MAX_DEPTH = 3
_INF = float("inf")


class _Builder:
    """Draws one program; the choices shrink towards short scripts of gates."""

    def __init__(self, draw: st.DrawFn) -> None:
        self.draw = draw
        self.actors: dict[int, list[Stmt]] = {}
        self.scopes: dict[int, tuple[str, bool]] = {}
        self.groups: list[int] = []
        self.stmts = 0
        self.items = 0
        self.streams = draw(st.lists(st.sampled_from([0, 1, _INF]), max_size=2))
        self.events = draw(st.integers(0, 2))

    def script(self, actor: int, depth: int, via_start: bool) -> None:
        body = self.body(actor, depth, groups=[], allow_groups=True)
        if via_start and self.draw(st.integers(0, 9)) > 0:  # 10%: never call started()
            places = self.started_places(body)
            where, index = places[self.draw(st.integers(0, len(places) - 1))]
            where.insert(index, Started())
        self.actors[actor] = body

    def started_places(self, body: list[Stmt]) -> list[tuple[list[Stmt], int]]:
        # Anywhere in the actor's own code, but not inside a task group it opened
        # (started() moves the task, which Trio allows only from its top level).
        places = [(body, i) for i in range(len(body) + 1)]
        for stmt in body:
            if isinstance(stmt, (Scope, Catch)):
                places += self.started_places(stmt.body)
        return places

    def body(self, actor: int, depth: int, groups: list[int], allow_groups: bool) -> list[Stmt]:
        size = self.draw(st.integers(0, 4 if depth < 2 else 2))
        return [self.stmt(actor, depth, groups, allow_groups) for _ in range(size)]

    def stmt(self, actor: int, depth: int, groups: list[int], allow_groups: bool) -> Stmt:
        self.stmts += 1
        choices = ["gate", "gate", "gate", "checkpoint", "cancel", "cancel"]
        nested = depth < _MAX_DEPTH and self.stmts < _MAX_STMTS
        if nested:
            choices += ["scope", "scope", "catch"]
            if allow_groups and self.next_actor() < _MAX_ACTORS:
                choices += ["group", "group"]
        if groups and self.next_actor() < _MAX_ACTORS:
            choices += ["spawn", "spawn"]
        choices += ["deadline", "shield", "probe", "raise"]
        if self.events:
            choices += ["set_event", "wait_event"]
        if self.streams:
            choices += ["send", "receive", "close"]
        kind = self.draw(st.sampled_from(choices))
        d = self.draw
        if kind == "gate":
            return Gate()
        if kind == "checkpoint":
            return Checkpoint(d(st.sampled_from(["checkpoint", "sleep0"])))
        if kind == "cancel":
            return Cancel()
        if kind == "deadline":
            return SetDeadline()
        if kind == "shield":
            return SetShield(d(st.booleans()))
        if kind == "probe":
            return Probe()
        if kind == "raise":
            return Raise(f"e{actor}.{self.stmts}")
        if kind == "scope":
            sid = len(self.scopes)
            self.scopes[sid] = (d(st.sampled_from(SCOPE_KINDS)), d(st.booleans()))
            return Scope(sid, *self.scopes[sid],
                         self.body(actor, depth + 1, groups, allow_groups))
        if kind == "catch":
            # No task group inside: what a group raises for cancellation is
            # deliberately different (a bare CancelledError, not a group of them).
            return Catch(self.body(actor, depth + 1, groups, False), d(st.booleans()))
        if kind == "group":
            gid = len(self.groups)
            self.groups.append(gid)
            body = self.body(actor, depth + 1, groups + [gid], True)
            for _ in range(d(st.integers(0, 2))):
                if self.next_actor() < _MAX_ACTORS:
                    body.insert(d(st.integers(0, len(body))),
                                self.spawn(depth, groups + [gid]))
            return Group(gid, body)
        if kind == "spawn":
            return self.spawn(depth, groups)
        if kind == "set_event":
            return SetEvent(d(st.integers(0, self.events - 1)))
        if kind == "wait_event":
            return WaitEvent(d(st.integers(0, self.events - 1)))
        stream = d(st.integers(0, len(self.streams) - 1))
        if kind == "send":
            self.items += 1
            return Send(stream, self.items, d(st.booleans()))
        if kind == "receive":
            return Receive(stream, d(st.booleans()))
        return Close(stream, d(st.sampled_from(["send", "recv"])), d(st.booleans()))

    def next_actor(self) -> int:
        return max(self.actors) + 1

    def spawn(self, depth: int, groups: list[int]) -> Spawn:
        # Mostly the innermost group; sometimes one further out.
        gid = groups[-1] if self.draw(st.integers(0, 3)) else self.draw(st.sampled_from(groups))
        actor = self.next_actor()
        via_start = self.draw(st.booleans())
        self.actors[actor] = []  # claim the id before the child's own spawns
        self.script(actor, depth + 1, via_start)
        return Spawn(actor, gid, via_start)


@st.composite
def programs(draw: st.DrawFn) -> Program:
    """A random program with its driver schedule."""
    b = _Builder(draw)
    b.actors[0] = []
    b.script(0, 0, via_start=False)
    prog = Program(b.actors, b.scopes, b.groups, b.streams, b.events)
    refs = prog.refs()
    for script in prog.actors.values():
        for stmt in walk(script):
            if isinstance(stmt, (Cancel, SetDeadline, SetShield, Probe)):
                stmt.ref = draw(st.sampled_from(refs)) if refs else None
    actor_ids = sorted(prog.actors)
    steps: list[st.SearchStrategy[Step]] = [st.tuples(st.just("open"), st.sampled_from(actor_ids))]
    if refs:
        steps += [st.tuples(st.just("cancel"), st.sampled_from(refs)),
                  st.tuples(st.just("deadline"), st.sampled_from(refs)),
                  st.tuples(st.just("shield"), st.sampled_from(refs), st.booleans())]
    prog.schedule = draw(st.lists(st.one_of(*steps), max_size=14))
    return prog


def format_program(prog: Program) -> str:
    """The program as readable pseudo-code (for failure reports)."""
    lines: list[str] = []

    def ref(r: Ref | None) -> str:
        return "-" if r is None else (f"scope{r[1]}" if r[0] == "s" else f"group{r[1]}")

    def emit(body: list[Stmt], indent: int) -> None:
        pad = "    " * indent
        if not body:
            lines.append(pad + "pass")
        for s in body:
            if isinstance(s, Scope):
                lines.append(f"{pad}with scope{s.sid} = {s.kind}(shield={s.shield}):")
                emit(s.body, indent + 1)
            elif isinstance(s, Group):
                lines.append(f"{pad}async with group{s.gid}:")
                emit(s.body, indent + 1)
            elif isinstance(s, Catch):
                lines.append(f"{pad}try:")
                emit(s.body, indent + 1)
                lines.append(f"{pad}except Cancelled: record" +
                             ("; await checkpoint()" if s.recheck else ""))
            elif isinstance(s, Spawn):
                how = "await start" if s.via_start else "start_soon"
                lines.append(f"{pad}{how}(group{s.gid}, actor{s.actor})")
            elif isinstance(s, (Cancel, SetDeadline)):
                what = "cancel()" if isinstance(s, Cancel) else "deadline = -inf"
                lines.append(f"{pad}{ref(s.ref)}.{what}")
            elif isinstance(s, SetShield):
                lines.append(f"{pad}{ref(s.ref)}.shield = {s.value}")
            elif isinstance(s, Probe):
                lines.append(f"{pad}record {ref(s.ref)}.cancel_called, .cancelled_caught")
            elif isinstance(s, Send):
                lines.append(f"{pad}{'send_nowait' if s.nowait else 'await send'}"
                             f"(stream{s.stream}, {s.item})")
            elif isinstance(s, Receive):
                lines.append(f"{pad}{'receive_nowait' if s.nowait else 'await receive'}"
                             f"(stream{s.stream})")
            elif isinstance(s, Close):
                lines.append(f"{pad}{'await aclose' if s.aclose else 'close'}"
                             f"(stream{s.stream}.{s.side})")
            elif isinstance(s, Checkpoint):
                lines.append(f"{pad}await {'sleep(0)' if s.how == 'sleep0' else 'checkpoint()'}")
            elif isinstance(s, Gate):
                lines.append(f"{pad}await gate")
            elif isinstance(s, Started):
                lines.append(f"{pad}task_status.started()")
            elif isinstance(s, SetEvent):
                lines.append(f"{pad}event{s.eid}.set()")
            elif isinstance(s, WaitEvent):
                lines.append(f"{pad}await event{s.eid}.wait()")
            elif isinstance(s, Raise):
                lines.append(f"{pad}raise ValueError({s.tag!r})")

    lines.append(f"streams (max_buffer_size): {prog.streams}; events: {prog.events}")
    for actor in sorted(prog.actors):
        lines.append(f"actor{actor}:")
        emit(prog.actors[actor], 1)
    lines.append("driver: " + ", ".join(
        f"{s[0]} {'actor%d' % s[1] if s[0] == 'open' else ref(s[1])}"
        + (f"={s[2]}" if len(s) > 2 else "") for s in prog.schedule))
    return "\n".join(lines)
