"""pytest plugin: run pytest-asyncio tests on scopeloop loops.

The plugin is installed with scopeloop (through the ``pytest11`` entry point) but
does nothing unless asked for, on the command line::

    pytest --scopeloop                          # scopeloop on its default backend
    pytest --scopeloop-backend=asyncio          # a chosen backend (implies --scopeloop)
    pytest --scopeloop-backend=uvloop,asyncio   # every async test once per backend
    pytest --no-scopeloop                       # off for this run, whatever the ini says

or in the ini file (``pytest.ini``, ``tox.ini``, or ``[tool.pytest.ini_options]``
in ``pyproject.toml``)::

    scopeloop = true
    scopeloop_backend = uvloop      # or asyncio, "uvloop,asyncio", all, default

A backend name on the command line enables the plugin by itself; in the ini file,
``scopeloop_backend`` only chooses the backend and ``scopeloop = true`` enables it.
``default`` is uvloop where installed (or the ``SCOPELOOP_BACKEND`` environment
variable), ``all`` means every installed backend.

**pytest-asyncio.** It needs pytest-asyncio 1.4 or later and supplies the loops
through pytest-asyncio's ``pytest_asyncio_loop_factories`` hook: every
pytest-asyncio test and async fixture then runs in scopeloop Tasks, so scopeloop's
cancel scopes and task groups work inside them.  The factories are named
``scopeloop-uvloop`` and ``scopeloop-asyncio``; with two backends a test's id ends
in ``[scopeloop-uvloop]`` or ``[scopeloop-asyncio]``, and
``@pytest.mark.asyncio(loop_factories=["scopeloop-asyncio"])`` restricts a test to
one of them.  With one backend, test ids are unchanged.  The hook returns the first
answer it gets, so a ``conftest.py`` that implements ``pytest_asyncio_loop_factories``
itself takes precedence; it can include scopeloop's loops with
:func:`loop_factories`.

**Async generator fixtures run in one task.**  pytest-asyncio runs a fixture's
setup, the test and the fixture's teardown in three different tasks, and a cancel
scope or task group must be exited in the task that entered it.  So with the
plugin enabled, each async generator fixture gets a task of its own that runs its
setup, waits at the ``yield`` while the test runs (in its own task), and runs its
teardown; the usual server fixture works::

    @pytest_asyncio.fixture
    async def server():
        async with scopeloop.create_task_group() as tg:
            await tg.start(serve)
            yield
            tg.cancel_scope.cancel()

The fixture's task sits at the ``yield`` inside the group, as the generator does:
if the group is cancelled meanwhile (a child failed), the CancelledError is raised
at the ``yield``, the group exits there with the child's error, and the fixture's
teardown reports it.  Context variables set by the setup are visible in the test,
as pytest-asyncio provides.

**AnyIO.** AnyIO's own pytest plugin picks its loop through the ``anyio_backend``
fixture, and works beside this one (pytest-asyncio tests use the loops above,
``@pytest.mark.anyio`` tests the loop this fixture names)::

    import pytest
    import scopeloop

    @pytest.fixture
    def anyio_backend():
        return ("asyncio", {"loop_factory": scopeloop.new_event_loop})
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable
from typing import Any, cast

import pytest
from _pytest.fixtures import resolve_fixture_function

from ._asyncgen import exempt_caller
from .loop import BACKENDS, _resolve_backend, default_backend, new_event_loop

__all__ = ("loop_factories",)

_FACTORY_PLUGIN_NAME = "scopeloop-loop-factories"
_HOOK = "pytest_asyncio_loop_factories"


def loop_factories(backends: Iterable[str] | None = None,
                   ) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    """pytest-asyncio loop factories for scopeloop, one per backend.

    ``backends`` defaults to scopeloop's default backend.  The result maps
    ``"scopeloop-<backend>"`` to a function creating such a loop, the shape
    ``pytest_asyncio_loop_factories`` returns.
    """
    names = (default_backend(),) if backends is None else tuple(backends)
    return {f"scopeloop-{name}": functools.partial(new_event_loop, _resolve_backend(name))
            for name in names}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("scopeloop", "scopeloop event loops for async tests")
    group.addoption(
        "--scopeloop", action="store_true", dest="scopeloop", default=None,
        help="run pytest-asyncio tests on scopeloop loops (needs pytest-asyncio >= 1.4)")
    group.addoption(
        "--no-scopeloop", action="store_false", dest="scopeloop",
        help="do not use scopeloop loops, even if the ini file says so")
    group.addoption(
        "--scopeloop-backend", dest="scopeloop_backend", metavar="NAMES", default=None,
        help="scopeloop backend(s): uvloop, asyncio, a comma-separated list, 'all' or "
             "'default'; implies --scopeloop")
    parser.addini("scopeloop", type="bool", default=False,
                  help="run pytest-asyncio tests on scopeloop loops")
    parser.addini("scopeloop_backend", default="default",
                  help="scopeloop backend(s) when enabled: uvloop, asyncio, a "
                       "comma-separated list, 'all' or 'default'")


def selected_backends(config: pytest.Config) -> tuple[str, ...] | None:
    """The backends asked for by the options and ini file, or None when not enabled."""
    flag = config.getoption("scopeloop")
    backend_option = config.getoption("scopeloop_backend")
    if flag is False:
        return None
    if not (flag or backend_option is not None or config.getini("scopeloop")):
        return None
    spec = backend_option if backend_option is not None else config.getini("scopeloop_backend")
    return _parse_backends(str(spec))


def _parse_backends(spec: str) -> tuple[str, ...]:
    names = [name.strip() for name in spec.split(",") if name.strip()]
    try:
        if names in ([], ["default"]):
            return (default_backend(),)
        if names == ["all"]:
            return tuple(name for name in BACKENDS if _available(name))
        return tuple(dict.fromkeys(_resolve_backend(name) for name in names))
    except ValueError as exc:
        raise pytest.UsageError(f"scopeloop: {exc}") from None


def _available(backend: str) -> bool:
    try:
        _resolve_backend(backend)
    except ValueError:
        return False
    return True


class _LoopFactoryProvider:
    """Answers pytest-asyncio's loop-factory hook; registered only when enabled."""

    def __init__(self, backends: tuple[str, ...]) -> None:
        self.backends = backends
        self._factories = loop_factories(backends)

    @pytest.hookimpl(optionalhook=True)
    def pytest_asyncio_loop_factories(self, config: pytest.Config, item: pytest.Item,
                                      ) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
        return dict(self._factories)

    def pytest_report_header(self, config: pytest.Config) -> str:
        return f"scopeloop: pytest-asyncio tests run on scopeloop ({', '.join(self.backends)})"

    # Outside pytest-asyncio's own wrapper, so that it sees (and drives) ours.
    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_fixture_setup(self, fixturedef: pytest.FixtureDef[Any],
                             request: pytest.FixtureRequest) -> Any:
        if not (inspect.isasyncgenfunction(fixturedef.func)
                and _run_by_pytest_asyncio(fixturedef.func, request.config)):
            return (yield)
        fixture = cast("Callable[..., AsyncGenerator[Any, None]]",
                       resolve_fixture_function(fixturedef, request))
        original = fixturedef.func
        fixturedef.func = _in_one_task(fixture, fixturedef.argname)  # type: ignore[misc]
        try:
            return (yield)
        finally:
            fixturedef.func = original  # type: ignore[misc]


def _run_by_pytest_asyncio(func: Any, config: pytest.Config) -> bool:
    """Whether pytest-asyncio takes this async fixture (not AnyIO's or Trio's plugin)."""
    if getattr(getattr(func, "__func__", func), "_force_asyncio_fixture", False):
        return True  # @pytest_asyncio.fixture
    return str(config.getini("asyncio_mode")) == "auto"


def _in_one_task(fixture: Callable[..., AsyncGenerator[Any, None]], name: str,
                 ) -> Callable[..., AsyncIterator[Any]]:
    """An async generator fixture that runs ``fixture`` in a task of its own."""

    # (wraps copies pytest-asyncio's marks, such as the loop scope, too.)
    @functools.wraps(fixture)
    async def in_one_task(**kwargs: Any) -> AsyncIterator[Any]:
        host = _FixtureTask(fixture(**kwargs), name)
        value = await host.setup()
        yield value
        await host.teardown()

    return in_one_task


class _FixtureTask:
    """The task that runs one async generator fixture, from setup to teardown."""

    def __init__(self, agen: AsyncGenerator[Any, None], name: str) -> None:
        self._agen = agen
        self._name = name
        loop = asyncio.get_running_loop()
        self._started: asyncio.Future[tuple[bool, Any]] = loop.create_future()
        # The future the task waits on at the yield; scope delivery may cancel it.
        self._wake: asyncio.Future[None] = loop.create_future()
        self._teardown_requested = False
        self._context = contextvars.copy_context()
        self._task = loop.create_task(self._run(), name=f"fixture {name!r}",
                                      context=self._context)

    async def setup(self) -> Any:
        ok, value = await self._started
        if not ok:
            raise value
        # Context variables the setup set, for the test (as pytest-asyncio does).
        for var, new in self._context.items():
            try:
                if var.get() is new:
                    continue
            except LookupError:
                pass
            var.set(new)
        return value

    async def teardown(self) -> None:
        self._teardown_requested = True
        if not self._wake.done():
            self._wake.set_result(None)
        await self._task

    async def _run(self) -> None:
        agen = self._agen
        try:
            value = await agen.__anext__()
        except BaseException as exc:
            self._started.set_result((False, exc))
            return
        self._started.set_result((True, value))
        thrown: BaseException | None = None
        while not self._teardown_requested:
            try:
                await self._wake
            except asyncio.CancelledError as exc:
                # A scope the fixture entered was cancelled: the generator is the
                # one waiting here, so the error belongs at its yield.
                thrown = exc
                break
        try:
            if thrown is not None:
                await agen.athrow(thrown)
            else:
                await agen.__anext__()
        except StopAsyncIteration:
            return
        finally:
            del thrown
        await agen.aclose()
        raise RuntimeError(f"async generator fixture {self._name!r} yielded more than "
                           f"once; yield only once")


# A fixture yields inside its scopes by design: no debug-mode warning for that.
exempt_caller(_FixtureTask._run.__code__)


def pytest_configure(config: pytest.Config) -> None:
    backends = selected_backends(config)
    if backends is None:
        return
    # pytest-asyncio declares the hook when it loads; older versions have no such hook
    # and would silently run the tests on the stock loop.
    if not config.pluginmanager.hasplugin("asyncio") or not hasattr(config.hook, _HOOK):
        raise pytest.UsageError(
            "scopeloop: --scopeloop / 'scopeloop = true' needs pytest-asyncio 1.4 or later "
            "(pip install 'pytest-asyncio>=1.4'), loaded and not disabled with -p no:asyncio")
    config.pluginmanager.register(_LoopFactoryProvider(backends), _FACTORY_PLUGIN_NAME)
