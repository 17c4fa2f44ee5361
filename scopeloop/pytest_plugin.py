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
import functools
from collections.abc import Callable, Iterable

import pytest

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
