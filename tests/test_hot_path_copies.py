"""The memory streams' send() and receive() hold marked copies of
``_waitqueue.will_raise`` (a call there is 3-5% of a ping-pong round trip): in every
state a task can be in, each copy must decide as the original does."""

from __future__ import annotations

import asyncio
import inspect
import textwrap
from collections.abc import Callable
from typing import Any

import pytest

import scopeloop
from scopeloop import _waitqueue, streams

_START, _END = "# -- copy of will_raise(task) --", "# -- end of copy --"


def _copies() -> list[str]:
    source = inspect.getsource(streams)
    blocks = []
    for piece in source.split(_START)[1:]:
        assert _END in piece, "a copy of will_raise has no end marker"
        blocks.append(textwrap.dedent(piece.split(_END)[0]).strip())
    return blocks


def test_every_copy_is_the_same_text() -> None:
    copies = _copies()
    assert len(copies) == 2  # send() and receive()
    assert copies[0] == copies[1]


# Each state puts the running task where the cancel point must (or must not) raise.
_STATES = ["no scope", "open scope", "cancelled scope", "shielded in cancelled",
           "cancelled inside shield", "native cancel pending"]


async def _observe(state: str, operation: Callable[[], Any]) -> tuple[bool, bool]:
    """(will_raise's answer, whether ``operation`` raised CancelledError) in ``state``."""
    task = asyncio.current_task()
    predicted = raised = False

    async def probe() -> None:
        nonlocal predicted, raised
        predicted = _waitqueue.will_raise(task)
        try:
            await operation()
        except asyncio.CancelledError:
            raised = True
            raise

    if state == "no scope":
        await probe()
        return predicted, raised
    with scopeloop.CancelScope() as outer:
        if state == "open scope":
            await probe()
        elif state == "cancelled scope":
            outer.cancel()
            await probe()
        elif state == "shielded in cancelled":
            outer.cancel()
            with scopeloop.CancelScope(shield=True):
                await probe()
        elif state == "cancelled inside shield":
            with scopeloop.CancelScope(shield=True):
                with scopeloop.CancelScope() as inner:
                    inner.cancel()
                    await probe()
        elif state == "native cancel pending":
            assert task is not None
            task.cancel()
            try:
                await probe()
            except asyncio.CancelledError:
                task.uncancel()
    return predicted, raised


@pytest.mark.parametrize("state", _STATES)
@pytest.mark.parametrize("side", ["send", "receive"])
def test_each_copy_decides_as_will_raise(run: Callable[..., Any], state: str,
                                         side: str) -> None:
    async def main() -> tuple[bool, bool]:
        send, receive = scopeloop.create_memory_object_stream[int](1)
        if side == "send":
            operation = lambda: send.send(1)  # noqa: E731  (room in the buffer)
        else:
            send.send_nowait(1)
            operation = receive.receive  # (an item is waiting)
        return await _observe(state, operation)

    predicted, raised = run(main)
    assert raised == predicted
    # The states are chosen so that both answers occur.
    assert predicted == (state in ("cancelled scope", "cancelled inside shield",
                                   "native cancel pending"))


def test_make_task_sets_what_task_new_sets() -> None:
    """``task.make_task`` holds a marked copy of ``Task.__new__``'s body: a task made
    either way starts with the same scope fields."""
    from scopeloop import task as task_module
    source = inspect.getsource(task_module.make_task)
    copy = textwrap.dedent(source.split("# -- copy of Task.__new__ --")[1]
                           .split(_END)[0]).strip()
    original = textwrap.dedent(inspect.getsource(task_module.Task.__new__)).strip()
    fields = [line.split("=")[0].strip().split(".")[1] for line in copy.splitlines()
              if line.startswith("task._")]
    assert fields == [line.split("=")[0].strip().split(".")[1]
                      for line in original.splitlines()[1:] if line.strip().startswith("self._")]
    assert set(fields) == set(task_module.Task.__slots__)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        made = task_module.make_task(asyncio.sleep(0), loop, None, None)
        built = scopeloop.Task(asyncio.sleep(0), loop=loop)
        for name in fields:
            assert getattr(made, name) == getattr(built, name)
        await asyncio.gather(made, built)

    scopeloop.run(main)
