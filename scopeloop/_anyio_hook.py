"""Switch the AnyIO bridge on for scopeloop loops, without importing AnyIO.

``new_event_loop()`` calls ``arrange()``.  If AnyIO's asyncio backend is loaded
already, the bridge is installed at once; if not, a one-shot ``sys.meta_path``
finder waits for ``anyio._backends._asyncio`` to be imported and installs the
bridge right after that module has executed, then takes itself out.  Importing
AnyIO here would cost every scopeloop program AnyIO's import time (tens of
milliseconds); the finder costs one string comparison per import meanwhile.

Opt-out: ``SCOPELOOP_ANYIO_BRIDGE=0`` (checked by loop.py) or
``new_event_loop(anyio_bridge=False)``.
"""

from __future__ import annotations

import sys
import warnings
from importlib.machinery import ModuleSpec, PathFinder
from types import ModuleType
from typing import Any

__all__ = ("arrange",)

_TARGET = "anyio._backends._asyncio"


def arrange() -> None:
    """Install the bridge now if AnyIO's asyncio backend is loaded, else when it is."""
    if _TARGET in sys.modules:
        _install()
    elif _finder not in sys.meta_path:
        sys.meta_path.insert(0, _finder)


def _install() -> None:
    from . import anyio_compat  # (AnyIO is loaded: this imports it no further)
    anyio_compat._install_automatically()


class _InstallAfterImport:
    """Finds AnyIO's asyncio backend as the path finder would, with a loader that
    installs the bridge once the module has executed."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> ModuleSpec | None:
        if name != _TARGET:
            return None
        if self in sys.meta_path:
            sys.meta_path.remove(self)  # one shot, whatever happens next
        spec = PathFinder.find_spec(name, path, target)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        spec.loader = _Loader(spec.loader)  # type: ignore[assignment]
        return spec


class _Loader:
    """Wraps the real loader; put back on the module once it has executed."""

    def __init__(self, loader: Any) -> None:
        self._loader = loader

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)  # type: ignore[no-any-return]

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        module.__loader__ = self._loader
        if module.__spec__ is not None:
            module.__spec__.loader = self._loader
        try:
            _install()
        except Exception as exc:  # the bridge must never break importing AnyIO
            warnings.warn(f"scopeloop's AnyIO bridge could not be installed: {exc!r}",
                          RuntimeWarning, stacklevel=2)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)  # get_source, is_package, ... for tools


_finder = _InstallAfterImport()
