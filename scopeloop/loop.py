"""The scopeloop event loops, backend choice, and the event loop policy.

A scopeloop loop is a real asyncio loop (the stdlib selector loop, or uvloop) whose
``create_task`` builds scopeloop Tasks.  Everything else is the backend's own code,
so programs that never touch a scope see stock behaviour.

State owned here: the backend choice (``SCOPELOOP_BACKEND``, ``SCOPELOOP_DEBUG``) and
the policy.  The loop classes are in ``_backends.py``; debug mode's in
``scopeloop.diagnostics``, imported only when a debug loop is made.
"""

from __future__ import annotations

import asyncio
import os

from . import _anyio_hook
from ._backends import AsyncioEventLoop, _uvloop

try:
    from ._backends import UVLoopEventLoop
except ImportError:  # uvloop is not installed
    UVLoopEventLoop = None  # type: ignore[assignment,misc]
from ._cpython import POLICY_BASE

__all__ = ("new_event_loop", "EventLoopPolicy", "BACKENDS", "default_backend")

BACKENDS = ("uvloop", "asyncio")
_ENV_BACKEND = "SCOPELOOP_BACKEND"
_ENV_DEBUG = "SCOPELOOP_DEBUG"
_ENV_ANYIO_BRIDGE = "SCOPELOOP_ANYIO_BRIDGE"


def default_backend() -> str:
    """The backend ``new_event_loop()`` uses when none is named."""
    return _resolve_backend(None)


def _resolve_backend(backend: str | None) -> str:
    source = "backend"
    if backend is None:
        backend = os.environ.get(_ENV_BACKEND) or None
        source = f"environment variable {_ENV_BACKEND}"
    if backend is None:
        return "uvloop" if _uvloop is not None else "asyncio"
    if backend not in BACKENDS:
        raise ValueError(f"unknown scopeloop {source} {backend!r}; valid backends are "
                         f"{', '.join(map(repr, BACKENDS))}")
    if backend == "uvloop" and _uvloop is None:
        raise ValueError(f"{source} 'uvloop' was asked for but uvloop is not installed "
                         f"(pip install uvloop), or choose 'asyncio'")
    return backend


def _debug_from_env() -> bool:
    return os.environ.get(_ENV_DEBUG, "") not in ("", "0")


def new_event_loop(backend: str | None = None, *, debug: bool | None = None,
                   anyio_bridge: bool | None = None) -> asyncio.AbstractEventLoop:
    """Create a new scopeloop event loop.

    ``backend`` is ``"uvloop"`` (the default where uvloop is installed) or
    ``"asyncio"`` (the stdlib selector loop); when None, the environment variable
    ``SCOPELOOP_BACKEND`` decides.  ``debug=True`` (or ``SCOPELOOP_DEBUG=1``) turns
    on asyncio's debug mode and scopeloop's diagnostics (see scopeloop.diagnostics).
    ``anyio_bridge=False`` (or ``SCOPELOOP_ANYIO_BRIDGE=0``) keeps AnyIO's own asyncio
    cancel scopes on this loop; by default AnyIO code in its tasks uses scopeloop's
    (see scopeloop.anyio_compat).
    """
    name = _resolve_backend(backend)
    if debug is None:
        debug = _debug_from_env()
    loop: asyncio.AbstractEventLoop
    if debug:
        # Diagnostics live in debug-only subclasses, so that a loop without debug
        # runs the backend's own call_soon/call_later untouched (zero cost).
        from .diagnostics import debug_loop_class  # lazily: debug mode only
        loop = debug_loop_class(name)()
        loop.set_debug(True)
    elif name == "uvloop":
        loop = UVLoopEventLoop()
    else:
        loop = AsyncioEventLoop()
    if anyio_bridge is None:
        anyio_bridge = os.environ.get(_ENV_ANYIO_BRIDGE, "") != "0"
    if anyio_bridge:
        _anyio_hook.arrange()
    else:
        loop._anyio_bridge = False  # type: ignore[union-attr]
    return loop


_NO_POLICY = ("asyncio's event loop policy API is not available on this Python "
              "(deprecated in 3.14, removed in 3.16), so scopeloop.EventLoopPolicy "
              "cannot be used; run the program with scopeloop.run(main), "
              "asyncio.run(main(), loop_factory=scopeloop.new_event_loop) or "
              "asyncio.Runner(loop_factory=scopeloop.new_event_loop)")


class _NoPolicy:
    """Stands in for the stdlib policy base where there is none (3.16)."""

    def __init__(self) -> None:
        raise RuntimeError(_NO_POLICY)


# 3.14 deprecates the public policy names: POLICY_BASE is the private alias there,
# so importing scopeloop does not warn (installing the policy still does).
class EventLoopPolicy(POLICY_BASE or _NoPolicy):  # type: ignore[misc]
    """An event loop policy whose loops are scopeloop loops.

    ``asyncio.set_event_loop_policy(scopeloop.EventLoopPolicy())`` makes
    ``asyncio.run``, ``asyncio.Runner`` and ``asyncio.new_event_loop`` use scopeloop.
    """

    def __init__(self, backend: str | None = None) -> None:
        super().__init__()  # (raises where the policy API is gone)
        self._backend = None if backend is None else _resolve_backend(backend)

    def new_event_loop(self) -> asyncio.AbstractEventLoop:
        return new_event_loop(self._backend)
