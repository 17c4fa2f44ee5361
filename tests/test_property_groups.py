"""Random trees of task groups against a reference model (issue 4).

A tree is a root group whose children are leaves (tasks that wait for their own
event and then fail, finish, cancel their group, or do the same inside a shield,
or wait forever) and sub-groups (a task running a group, possibly inside a
shield).  Children are started with ``start_soon`` or ``start()``; a group may
also ``start()`` "late" tasks one after another, which call ``started()`` (or
fail) only when their event fires.  The test fires the events in a random order,
interleaved with cancellations of random groups, letting the loop settle after
each step, and ends by cancelling the root group or an enclosing scope (then, so
that shielded sub-groups end too, every group still running, outermost first).

The model states Trio's rules directly: a failing or cancelled child cancels its
group; a task in a cancelled region (up to the nearest shield) is cancelled at its next
checkpoint; a group raises its children's errors as an exception group, else
re-raises a cancellation if a child ended cancelled while its region is
cancelled; the outermost cancelled scope of the region catches it (also when
errors leave through it).  Driven by
events only, each example is deterministic.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Union

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import scopeloop
from scopeloop import (
    TASK_STATUS_IGNORED,
    CancelScope,
    create_task_group,
    sleep_forever,
    wait_all_tasks_blocked,
)

LEAF_KINDS = ("fail", "finish", "cancel", "shield_fail", "shield_finish", "forever")
LATE_KINDS = ("start_forever", "start_fail")


@dataclass
class Leaf:
    kind: str
    via_start: bool
    ident: int = -1


@dataclass
class Late:
    kind: str
    ident: int = -1


@dataclass
class Group:
    children: list[Union[Leaf, Sub]]
    late: list[Late]
    ident: int = -1


@dataclass
class Sub:
    group: Group
    shield: bool
    via_start: bool
    ident: int = -1


def number(group: Group, counter: list[int]) -> None:
    """Give every group, leaf, late task and sub-group task a unique ident."""
    def next_ident() -> int:
        counter[0] += 1
        return counter[0]

    group.ident = next_ident()
    for child in group.children:
        child.ident = next_ident()
        if isinstance(child, Sub):
            number(child.group, counter)
    for late in group.late:
        late.ident = next_ident()


def walk(group: Group) -> list[Any]:
    nodes: list[Any] = [group]
    for child in group.children:
        nodes.append(child)
        if isinstance(child, Sub):
            nodes.extend(walk(child.group))
    nodes.extend(group.late)
    return nodes


def group_of_leaves(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Group]:
    late = st.builds(Late, st.sampled_from(LATE_KINDS))
    return st.builds(Group, st.lists(children, max_size=4), st.lists(late, max_size=2))


leaves = st.builds(Leaf, st.sampled_from(LEAF_KINDS), st.booleans())
trees = st.recursive(
    group_of_leaves(leaves),
    lambda inner: group_of_leaves(
        st.one_of(leaves, st.builds(Sub, inner, st.booleans(), st.booleans()))),
    max_leaves=10)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[Group, list[tuple[str, int]], str]:
    tree = draw(trees)
    number(tree, [0])
    nodes = walk(tree)
    events = [("event", n.ident) for n in nodes
              if isinstance(n, Late) or (isinstance(n, Leaf) and n.kind != "forever")]
    group_ids = [n.ident for n in nodes if isinstance(n, Group)]
    cancels = draw(st.lists(st.sampled_from(group_ids), max_size=2, unique=True))
    steps = draw(st.permutations(events + [("cancel", g) for g in cancels]))
    final = draw(st.sampled_from(["cancel outer scope", "cancel root group"]))
    return tree, steps, final


# -- outcome in a comparable form ----------------------------------------------------


class Boom(Exception):
    def __init__(self, ident: int) -> None:
        super().__init__(ident)
        self.ident = ident


def canon(exc: BaseException) -> Any:
    """An exception as nested tuples; order within a group does not matter."""
    if isinstance(exc, Boom):
        return ("boom", exc.ident)
    if isinstance(exc, BaseExceptionGroup):
        # Only Exceptions inside: it must be an ExceptionGroup.
        kind = "group" if type(exc) is ExceptionGroup else f"wrong type {type(exc).__name__}"
        return (kind, tuple(sorted((canon(e) for e in exc.exceptions), key=repr)))
    return ("unexpected", repr(exc))


@dataclass
class Observed:
    root: Any = None  # canon() of what came out of the outer scope, or None
    states: dict[int, str] = field(default_factory=dict)  # task ident -> how it ended
    scopes: dict[int, tuple[bool, bool]] = field(default_factory=dict)  # cancel_called, caught
    outer: tuple[bool, bool] = (False, False)


# -- the real thing ------------------------------------------------------------------


class Real:
    def __init__(self, tree: Group) -> None:
        self.tree = tree
        self.events: dict[int, asyncio.Event] = {}
        self.groups: dict[int, scopeloop.TaskGroup] = {}
        self.states: dict[int, str] = {n.ident: "unspawned" for n in walk(tree)
                                       if isinstance(n, Late)}
        self.tasks: list[asyncio.Task[Any]] = []
        self.cancelling: dict[int, int] = {}
        self.outer: CancelScope | None = None
        self.root: Any = None
        self.exited: set[int] = set()

    def _enter(self, ident: int) -> asyncio.Task[Any]:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.append(task)
        return task

    async def leaf(self, node: Leaf, tg: scopeloop.TaskGroup, *,
                   task_status: Any = TASK_STATUS_IGNORED) -> None:
        me = self._enter(node.ident)
        if node.via_start:
            task_status.started()
        try:
            await self._behave(node, tg)
        except asyncio.CancelledError:
            self.states[node.ident] = "cancelled"
            raise
        except Boom:
            self.states[node.ident] = "error"
            raise
        else:
            self.states[node.ident] = "ok"
        finally:
            self.cancelling[node.ident] = me.cancelling()

    async def _behave(self, node: Leaf, tg: scopeloop.TaskGroup) -> None:
        kind = node.kind
        if kind == "forever":
            await sleep_forever()
        elif kind.startswith("shield_"):
            with CancelScope(shield=True):
                await self.events[node.ident].wait()
                if kind == "shield_fail":
                    raise Boom(node.ident)
            await scopeloop.checkpoint()
        else:
            await self.events[node.ident].wait()
            if kind == "fail":
                raise Boom(node.ident)
            if kind == "cancel":
                tg.cancel_scope.cancel()

    async def late(self, node: Late, *, task_status: Any = TASK_STATUS_IGNORED) -> None:
        me = self._enter(node.ident)
        started = False
        try:
            await self.events[node.ident].wait()
            if node.kind == "start_fail":
                raise Boom(node.ident)
            task_status.started()
            started = True
            await sleep_forever()
        except asyncio.CancelledError:
            self.states[node.ident] = "cancelled" if started else "cancelled before started"
            raise
        except Boom:
            self.states[node.ident] = "error"
            raise
        finally:
            self.cancelling[node.ident] = me.cancelling()

    async def sub(self, node: Sub, *, task_status: Any = TASK_STATUS_IGNORED) -> None:
        me = self._enter(node.ident)
        if node.via_start:
            task_status.started()
        try:
            if node.shield:
                with CancelScope(shield=True) as shield:
                    await self.group(node.group)
                assert not shield.cancelled_caught
            else:
                await self.group(node.group)
        except asyncio.CancelledError:
            self.states[node.ident] = "cancelled"
            raise
        except BaseExceptionGroup:
            self.states[node.ident] = "error"
            raise
        else:
            self.states[node.ident] = "ok"
        finally:
            self.cancelling[node.ident] = me.cancelling()

    async def group(self, node: Group) -> None:
        try:
            await self._group(node)
        finally:
            self.exited.add(node.ident)

    async def _group(self, node: Group) -> None:
        async with create_task_group() as tg:
            self.groups[node.ident] = tg
            for child in node.children:
                if isinstance(child, Leaf):
                    spawn: tuple[Any, ...] = (self.leaf, child, tg)
                else:
                    spawn = (self.sub, child)
                if child.via_start:
                    await tg.start(*spawn)
                else:
                    tg.start_soon(*spawn)
            for late in node.late:
                await tg.start(self.late, late)

    async def run_root(self) -> None:
        try:
            with CancelScope() as outer:
                self.outer = outer
                await self.group(self.tree)
        except BaseExceptionGroup as exc:
            self.root = canon(exc)


def blocked(task: asyncio.Task[Any]) -> bool:
    waiter = task._fut_waiter  # type: ignore[attr-defined]
    return task.done() or (waiter is not None and not waiter.done())


async def settle() -> None:
    """Return once no task can make progress.

    wait_all_tasks_blocked() alone is not enough here: when a child task ends, its
    group's done-callback is still queued at the next check, with every task
    looking blocked, and each level of nested groups unwinds through one such
    round.  Requiring every task blocked at several checks in a row lets queued
    callbacks run and wake whoever they wake.
    """
    await wait_all_tasks_blocked()
    me = asyncio.current_task()
    quiet = 0
    while quiet < 3:
        await asyncio.sleep(0)
        if all(blocked(task) for task in asyncio.all_tasks() if task is not me):
            quiet += 1
        else:
            quiet = 0


async def run_real(tree: Group, steps: list[tuple[str, int]], final: str) -> Observed:
    real = Real(tree)
    for node in walk(tree):
        if isinstance(node, (Leaf, Late)):
            real.events[node.ident] = asyncio.Event()
    root_task = asyncio.get_running_loop().create_task(real.run_root())
    await settle()
    for what, ident in steps:
        if what == "event":
            real.events[ident].set()
        else:
            real.groups[ident].cancel_scope.cancel()
        await settle()
    assert real.outer is not None
    if final == "cancel outer scope":
        real.outer.cancel()
    else:
        real.groups[tree.ident].cancel_scope.cancel()
    await settle()
    for ident in sorted(real.groups):  # (pre-order: outermost first)
        if ident not in real.exited:
            real.groups[ident].cancel_scope.cancel()
            await settle()

    # No task is left running, and every cancel counter is back to zero.
    assert root_task.done()
    assert all(task.done() for task in real.tasks)
    assert asyncio.all_tasks() == {asyncio.current_task()}
    assert set(real.cancelling.values()) <= {0}
    assert root_task.cancelling() == 0
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]
    if root_task.cancelled():
        real.root = "cancellation escaped the outer scope"
    else:
        root_task.result()

    return Observed(
        root=real.root,
        states=real.states,
        scopes={ident: (tg.cancel_scope.cancel_called, tg.cancel_scope.cancelled_caught)
                for ident, tg in real.groups.items()},
        outer=(real.outer.cancel_called, real.outer.cancelled_caught))


# -- the model -----------------------------------------------------------------------


class MScope:
    def __init__(self, parent: MScope | None, shield: bool = False) -> None:
        self.parent = parent
        self.shield = shield
        self.cancelled = False
        self.caught = False
        self.caught_in_errors = False  # errors leaving through it carry its cancellation

    def catcher(self) -> MScope | None:
        """The scope that catches the cancelled region this scope is in."""
        scope: MScope | None = self
        found = None
        while scope is not None:
            if scope.cancelled:
                found = scope
            if scope.shield:
                break
            scope = scope.parent
        return found

    def effectively_cancelled(self) -> bool:
        scope: MScope | None = self
        while scope is not None:
            if scope.cancelled:
                return True
            if scope.shield:
                return False
            scope = scope.parent
        return False


@dataclass
class MTask:
    node: Any
    group: MGroup  # the group it is a child of (or is being started into)
    status: str  # "waiting", "shielded", "starting", "in group", or how it ended
    error: Any = None  # canon() of its error
    runs: MGroup | None = None  # for a sub-group task: its group


@dataclass
class MGroup:
    node: Group
    scope: MScope
    owner: MTask | None  # None for the root group
    phase: str = "body"  # "starting" (waiting in start()), "exiting", "exited"
    late_index: int = 0
    body_cancelled: bool = False
    errors: list[Any] = field(default_factory=list)
    child_cancelled: bool = False


class Model:
    """Trio's rules, stated directly; run to quiescence after every step."""

    def __init__(self, tree: Group) -> None:
        self.tasks: dict[int, MTask] = {}
        self.groups: dict[int, MGroup] = {}
        self.fired: set[int] = set()
        self.outer = MScope(None)
        self.root: Any = None
        self.enter(tree, self.outer, None)

    # setup and spawning
    def enter(self, node: Group, parent: MScope, owner: MTask | None) -> MGroup:
        group = MGroup(node, MScope(parent), owner)
        self.groups[node.ident] = group
        for child in node.children:
            if isinstance(child, Leaf):
                status = "shielded" if child.kind.startswith("shield_") else "waiting"
                self.tasks[child.ident] = MTask(child, group, status)
            else:
                task = self.tasks[child.ident] = MTask(child, group, "in group")
                region = MScope(group.scope, shield=True) if child.shield else group.scope
                task.runs = self.enter(child.group, region, task)
        for late in node.late:
            self.tasks[late.ident] = MTask(late, group, "unspawned")
        self.start_next_late(group)
        return group

    def start_next_late(self, group: MGroup) -> None:
        if group.late_index == len(group.node.late):
            group.phase = "exiting"
            return
        task = self.tasks[group.node.late[group.late_index].ident]
        task.status = "starting"
        group.phase = "starting"
        if task.node.ident in self.fired:
            self.act(task)  # its event is already set: it acts in its first step

    # steps
    def fire(self, ident: int) -> None:
        self.fired.add(ident)
        task = self.tasks[ident]
        if task.status in ("waiting", "shielded", "starting"):
            self.act(task)
        self.settle()

    def cancel_group(self, ident: int) -> None:
        self.groups[ident].scope.cancelled = True
        self.settle()

    def cancel_outer(self) -> None:
        self.outer.cancelled = True
        self.settle()

    def act(self, task: MTask) -> None:
        """The task's event fired while it waited for it."""
        kind, group = task.node.kind, task.group
        if kind in ("fail", "shield_fail"):
            self.end(task, "error", ("boom", task.node.ident))
        elif kind == "finish":
            self.end(task, "ok")
        elif kind == "cancel":
            group.scope.cancelled = True
            self.end(task, "ok")
        elif kind == "shield_finish":
            # Out of its shield, its next checkpoint sees its group's region.
            self.end(task, "cancelled" if group.scope.effectively_cancelled() else "ok")
        elif kind == "start_fail":
            # start() raises the error in the group's body; __aexit__ records it
            # and cancels the group.
            task.status = "error"
            group.errors.append(("boom", task.node.ident))
            group.scope.cancelled = True
            group.phase = "exiting"
        elif kind == "start_forever":
            task.status = "waiting"  # now a child of the group, waiting forever
            group.late_index += 1
            self.start_next_late(group)
        else:  # pragma: no cover
            raise AssertionError(kind)

    def end(self, task: MTask, how: str, error: Any = None) -> None:
        task.status = how
        group = task.group
        if how == "error":
            task.error = error
            group.errors.append(error)
            group.scope.cancelled = True
        elif how == "cancelled":
            # A child that ends Cancelled cancels its group (every cancellation
            # here comes from a scope).
            group.child_cancelled = True
            group.scope.cancelled = True

    def settle(self) -> None:
        changed = True
        while changed:
            changed = False
            for task in self.tasks.values():
                if task.status == "waiting" and task.group.scope.effectively_cancelled():
                    self.end(task, "cancelled")
                    changed = True
                elif task.status == "starting" and task.group.scope.effectively_cancelled():
                    # It still belongs to the caller (the group's host, inside the
                    # group): start() raises the cancellation in the group's body.
                    task.status = "cancelled before started"
                    group = task.group
                    group.body_cancelled = True
                    group.scope.cancelled = True
                    group.phase = "exiting"
                    changed = True
            for group in self.groups.values():
                if group.phase == "exiting" and not any(
                        t.group is group and t.status in ("waiting", "shielded", "in group")
                        for t in self.tasks.values()):
                    self.exit(group)
                    changed = True

    def exit(self, group: MGroup) -> None:
        group.phase = "exited"
        scope = group.scope
        raising: Any = None
        if group.errors:
            raising = ("group", tuple(sorted(group.errors, key=repr)))
            # The errors leave, but the scope that catches the cancellations that
            # reached the group still records them, as in Trio, where they travel
            # on inside the error group (scopeloop's carry none, DESIGN §3.3): this
            # scope, or the catcher of the enclosing region, when they get there.
            if (group.body_cancelled or group.child_cancelled) and scope.cancelled:
                if not (scope.parent is not None and scope.parent.effectively_cancelled()):
                    scope.caught = True
                else:
                    scope.caught_in_errors = True
            if scope.caught_in_errors and scope.cancelled:
                if not (scope.parent is not None and scope.parent.effectively_cancelled()):
                    scope.caught = True
                else:  # the errors carry it on to the region's catcher outside
                    catcher = scope.parent.catcher()
                    if catcher is not None:
                        catcher.caught_in_errors = True
        elif group.body_cancelled or (group.child_cancelled and scope.effectively_cancelled()):
            raising = "cancelled"
        if (raising == "cancelled" and scope.cancelled
                and not (scope.parent is not None and scope.parent.effectively_cancelled())):
            scope.caught = True  # the outermost cancelled scope of its region
            raising = None
        owner = group.owner
        if owner is None:
            if raising == "cancelled":
                assert self.outer.cancelled
                self.outer.caught = True
                raising = None
            elif raising is not None and self.outer.caught_in_errors:
                self.outer.caught = True
            self.root = raising
        elif raising is None:
            self.end(owner, "ok")
        elif raising == "cancelled":
            self.end(owner, "cancelled")
        else:
            self.end(owner, "error", raising)

    def observed(self) -> Observed:
        states = {ident: task.status for ident, task in self.tasks.items()}
        assert not set(states.values()) & {"waiting", "shielded", "starting", "in group"}
        return Observed(
            root=self.root,
            states=states,
            scopes={ident: (g.scope.cancelled, g.scope.caught)
                    for ident, g in self.groups.items()},
            outer=(self.outer.cancelled, self.outer.caught))


def run_model(tree: Group, steps: list[tuple[str, int]], final: str) -> Observed:
    model = Model(tree)
    model.settle()
    for what, ident in steps:
        if what == "event":
            model.fire(ident)
        else:
            model.cancel_group(ident)
    if final == "cancel outer scope":
        model.cancel_outer()
    else:
        model.cancel_group(tree.ident)
    for ident in sorted(model.groups):
        if model.groups[ident].phase != "exited":
            model.cancel_group(ident)
    return model.observed()


# -- the property --------------------------------------------------------------------


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(scenarios())
def test_random_group_trees_match_the_model(
        backend: str, scenario: tuple[Group, list[tuple[str, int]], str]) -> None:
    tree, steps, final = scenario
    expected = run_model(tree, steps, final)
    # Coverage of the interesting cases (see --hypothesis-show-statistics).
    event(f"root outcome: {'none' if expected.root is None else expected.root[0]}")
    event(f"nested groups: {sum(isinstance(n, Group) for n in walk(tree)) > 1}")
    event(f"a group scope caught: {any(c for _, c in expected.scopes.values())}")
    event(f"a task cancelled before started(): "
          f"{'cancelled before started' in expected.states.values()}")
    event(f"an error inside a sub-group: {isinstance(expected.root, tuple) and 'group' in repr(expected.root[1])}")
    observed = scopeloop.run(run_real, tree, steps, final, backend=backend)
    assert observed.root == expected.root
    assert observed.states == expected.states
    assert observed.scopes == expected.scopes
    assert observed.outer == expected.outer


# -- a few trees written out, so the model itself is checked against intuition ------


def test_model_on_known_trees(backend: str) -> None:
    # A failing leaf next to a shielded one that fails later: both errors, grouped.
    tree = Group([Leaf("fail", False), Leaf("shield_fail", True), Leaf("forever", False)], [])
    number(tree, [0])
    fail, shielded, forever = (c.ident for c in tree.children)
    steps = [("event", fail), ("event", shielded)]
    expected = run_model(tree, steps, "cancel root group")
    assert expected.root == ("group", (("boom", fail), ("boom", shielded)))
    assert expected.states == {fail: "error", shielded: "error", forever: "cancelled"}
    # The scope caught the cancellation of `forever` that the failure caused (Trio).
    assert expected.scopes == {tree.ident: (True, True)}
    assert scopeloop.run(run_real, tree, steps, "cancel root group", backend=backend) == expected

    # A sub-group behind a shield outlives its parent's cancellation; the outer
    # scope catches the cancellation the root group re-raises.
    inner = Group([Leaf("finish", False)], [])
    tree = Group([Sub(inner, shield=True, via_start=True), Leaf("forever", True)],
                 [Late("start_forever")])
    number(tree, [0])
    sub, forever = (c.ident for c in tree.children)
    [finish] = (c.ident for c in inner.children)
    [late] = (t.ident for t in tree.late)
    steps = [("event", finish)]
    expected = run_model(tree, steps, "cancel outer scope")
    assert expected.root is None
    assert expected.outer == (True, True)
    assert expected.states == {sub: "ok", forever: "cancelled", finish: "ok",
                               late: "cancelled before started"}
    assert expected.scopes == {tree.ident: (True, False), inner.ident: (False, False)}
    assert scopeloop.run(run_real, tree, steps, "cancel outer scope", backend=backend) == expected


@pytest.mark.parametrize("final", ["cancel outer scope", "cancel root group"])
def test_empty_tree(backend: str, final: str) -> None:
    tree = Group([], [])
    number(tree, [0])
    expected = run_model(tree, [], final)
    assert expected.root is None and expected.states == {}
    assert scopeloop.run(run_real, tree, [], final, backend=backend) == expected
