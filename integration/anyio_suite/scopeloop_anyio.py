"""pytest plugin that runs AnyIO's own test suite on scopeloop or on the stock loops.

Loaded by ``run.py`` (``-p scopeloop_anyio``) together with one line appended to the
suite's ``tests/conftest.py``; configured by environment variables:

* ``SCOPELOOP_ANYIO_LOOPS``: ``stock`` (AnyIO's own asyncio parameters, unchanged)
  or ``scopeloop`` (the same parameters, same test ids, with scopeloop loops).
* ``SCOPELOOP_ANYIO_REPORT``: where to write each test's outcome and duration, and
  how many scopeloop loops were created, as JSON.

AnyIO parametrizes its asyncio tests three ways; in the scopeloop configuration
each keeps its id and gets the scopeloop counterpart of its loop:

* ``asyncio``: the stdlib loop -> ``scopeloop.new_event_loop("asyncio")``;
* ``asyncio+uvloop``: ``uvloop.new_event_loop`` -> ``scopeloop.new_event_loop("uvloop")``;
* ``asyncio+eager`` (3.12+): the stdlib loop with ``asyncio.eager_task_factory`` ->
  the scopeloop asyncio loop with ``asyncio.create_eager_task_factory(scopeloop.Task)``.

The scopeloop configuration also installs ``scopeloop.EventLoopPolicy("asyncio")``,
so tests that ask for a plain ``"asyncio"`` backend or call
``asyncio.new_event_loop()`` themselves get a scopeloop loop too.  Trio
parametrizations are deselected in both configurations: only asyncio is compared.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any, Callable

import pytest

LOOPS = os.environ.get("SCOPELOOP_ANYIO_LOOPS", "stock")
if LOOPS not in ("stock", "scopeloop"):
    raise RuntimeError(f"SCOPELOOP_ANYIO_LOOPS must be 'stock' or 'scopeloop', not {LOOPS!r}")


# How many scopeloop loops the session created (through the parameters or the
# policy): run.py checks it is not zero, so a broken hook cannot pass silently.
_loops_created = 0


def _count(loop: asyncio.AbstractEventLoop) -> asyncio.AbstractEventLoop:
    global _loops_created
    _loops_created += 1
    return loop


def _scopeloop_factories() -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    import scopeloop

    def asyncio_loop() -> asyncio.AbstractEventLoop:
        return _count(scopeloop.new_event_loop("asyncio"))

    def uvloop_loop() -> asyncio.AbstractEventLoop:
        return _count(scopeloop.new_event_loop("uvloop"))

    factories = {"asyncio": asyncio_loop, "asyncio+uvloop": uvloop_loop}
    if sys.version_info >= (3, 12):
        def eager_loop() -> asyncio.AbstractEventLoop:
            loop = _count(scopeloop.new_event_loop("asyncio"))
            loop.set_task_factory(eager_factory)
            return loop

        # The counterpart of asyncio.eager_task_factory is the stdlib's factory over
        # scopeloop.Task.  Not scopeloop.eager_task_factory: AnyIO recognises the
        # stdlib factory by its code object and then starts its own tasks lazily
        # (it must register a task before its first step); any other eager factory,
        # on stock asyncio too, makes AnyIO's task groups fail.
        eager_factory = asyncio.create_eager_task_factory(scopeloop.Task)

        factories["asyncio+eager"] = eager_loop
    return factories


def patch_conftest(namespace: dict[str, Any]) -> Any:
    """Adjust AnyIO's ``tests/conftest.py`` namespace; return the new ``anyio_backend``.

    ``asyncio_params`` is changed in place, because test modules import that very
    list for their own ``@pytest.mark.parametrize("anyio_backend", asyncio_params)``.
    The returned fixture replaces the conftest's, whose parameters (asyncio ones
    plus trio) were fixed when it was defined.
    """
    params = namespace["asyncio_params"]
    if LOOPS == "scopeloop":
        factories = _scopeloop_factories()
        # AnyIO's tests recognise uvloop (to expect its known deviations) by the loop
        # factory's module; this factory makes uvloop loops, so say so.
        factories["asyncio+uvloop"].__module__ = "uvloop"
        for index, param in enumerate(params):
            if param.id not in factories:
                raise RuntimeError(f"unknown AnyIO asyncio parameter {param.id!r}: "
                                   f"update {__file__} for this AnyIO version")
            name, options = param.values[0]
            options = dict(options, loop_factory=factories[param.id])
            params[index] = pytest.param((name, options), marks=param.marks, id=param.id)

    @pytest.fixture(params=list(params))
    def anyio_backend(request: pytest.FixtureRequest) -> Any:
        return request.param  # type: ignore[attr-defined]

    return anyio_backend


# Outcome and duration (all phases) of every test of the session, by node id.
_outcomes: dict[str, str] = {}
_seconds: dict[str, float] = {}


def pytest_configure(config: pytest.Config) -> None:
    if LOOPS == "scopeloop":
        import scopeloop

        class CountingPolicy(scopeloop.EventLoopPolicy):  # type: ignore[misc]
            def new_event_loop(self) -> asyncio.AbstractEventLoop:
                return _count(super().new_event_loop())

        asyncio.set_event_loop_policy(CountingPolicy("asyncio"))


def _is_trio(value: Any) -> bool:
    return value == "trio" or (isinstance(value, tuple) and value[:1] == ("trio",))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect every trio parametrization (of ``anyio_backend`` or ``anyio_backend_name``)."""
    keep, trio = [], []
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if any(_is_trio(v) for k, v in params.items() if k.startswith("anyio_backend")):
            trio.append(item)
        else:
            keep.append(item)
    if trio:
        config.hook.pytest_deselected(items=trio)
        items[:] = keep


@pytest.hookimpl(trylast=True)
def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    nodeid = report.nodeid
    _seconds[nodeid] = _seconds.get(nodeid, 0.0) + report.duration
    previous = _outcomes.get(nodeid)
    if report.when == "call":
        if hasattr(report, "wasxfail"):
            outcome = "xfailed" if report.skipped else "xpassed"
        else:
            outcome = report.outcome
    elif report.failed:
        outcome = "error"  # setup or teardown
    elif report.skipped:
        outcome = "xfailed" if hasattr(report, "wasxfail") else "skipped"
    else:
        return
    # A teardown error after a passing call makes the test an error; the first
    # problem otherwise wins.
    if previous in (None, "passed"):
        _outcomes[nodeid] = outcome


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    path = os.environ.get("SCOPELOOP_ANYIO_REPORT")
    if path:
        with open(path, "w", encoding="utf-8") as f:
            json.dump({"scopeloop_loops": _loops_created,
                       "tests": {nodeid: [outcome, round(_seconds.get(nodeid, 0.0), 4)]
                                 for nodeid, outcome in sorted(_outcomes.items())}}, f, indent=0)
