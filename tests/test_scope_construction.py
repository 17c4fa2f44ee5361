"""The scopes built without ``__init__`` are complete CancelScopes.

``move_on_after``/``fail_after``, ``start()``'s starter and the AnyIO bridge's
``anyio.CancelScope()`` build their scope with
``object.__new__`` (a Python-level ``__init__`` call is measurable on hot paths), so
they rely on every attribute a scope reads having a class-level default.  These
tests fail if an attribute is added that only ``__init__`` sets, or if a fast-built
scope behaves differently from one built by ``CancelScope()``.
"""

from __future__ import annotations

import asyncio
import inspect
import re
from typing import Any

import pytest

import scopeloop
from scopeloop import CancelScope
from scopeloop import anyio_compat
from scopeloop import group as group_module
from scopeloop import scope as scope_module

FAST_BUILT = {
    "move_on_after": lambda: scopeloop.move_on_after(None),
    "fail_after": lambda: scopeloop.fail_after(None),
    "starter": group_module._new_scope,
    # The AnyIO bridge's anyio.CancelScope() and a bridged group's scope.
    "anyio bridge": lambda: object.__new__(anyio_compat._AnyIOScope),
    "anyio bridge group": lambda: anyio_compat._AnyIOTaskGroup().cancel_scope,
}


def _attributes_set_in_methods(cls: type) -> set[str]:
    names: set[str] = set()
    for klass in cls.__mro__:
        if not klass.__module__.startswith("scopeloop"):
            continue  # (object, and AnyIO's bases of the bridge's scopes)
        source = inspect.getsource(klass)
        names |= set(re.findall(r"\bself\.(_[a-z_]+)\s*(?::[^=]+)?=(?!=)", source))
    return names


@pytest.mark.parametrize("cls", [CancelScope, scope_module._FailScope,
                                 group_module._StarterScope, group_module._GroupScope,
                                 anyio_compat._AnyIOScope, anyio_compat._AnyIOGroupScope],
                         ids=lambda cls: cls.__name__)
def test_every_attribute_a_scope_writes_has_a_class_default(cls: type) -> None:
    missing = sorted(name for name in _attributes_set_in_methods(cls)
                     if not hasattr(cls, name))
    assert not missing, (f"{cls.__name__} sets {missing} only in methods: give each a "
                         f"class-level default, scopes built by object.__new__ need one")


@pytest.mark.parametrize("kind", sorted(FAST_BUILT))
def test_a_fast_built_scope_reads_like_a_new_cancel_scope(kind: str) -> None:
    fast, plain = FAST_BUILT[kind](), CancelScope()
    for name in sorted(vars(CancelScope)):
        if name.startswith("__") or callable(getattr(CancelScope, name)):
            continue
        assert getattr(fast, name) == getattr(plain, name), name
    assert (fast.deadline, fast.shield, fast.cancel_called, fast.cancelled_caught) == (
        plain.deadline, plain.shield, plain.cancel_called, plain.cancelled_caught)


@pytest.mark.parametrize("kind", ["move_on_after", "fail_after"])
def test_a_fast_built_scope_enters_cancels_and_catches_like_cancel_scope(
        run: Any, kind: str) -> None:
    async def observe(scope: CancelScope) -> tuple[Any, ...]:
        with scope:
            scope.cancel("stop")
            await asyncio.sleep(0)
        task = asyncio.current_task()
        assert task is not None
        return scope.cancel_called, scope.cancelled_caught, task.cancelling()

    async def main() -> tuple[tuple[Any, ...], tuple[Any, ...]]:
        return await observe(FAST_BUILT[kind]()), await observe(CancelScope())

    fast, plain = run(main)
    assert fast == plain == (True, True, 0)
