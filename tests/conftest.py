"""Shared fixtures: every test runs on each backend (or the one SCOPELOOP_BACKEND names)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest

import scopeloop

_BACKENDS = ([os.environ["SCOPELOOP_BACKEND"]] if os.environ.get("SCOPELOOP_BACKEND")
             else [b for b in scopeloop.BACKENDS if b != "uvloop" or scopeloop.default_backend() == "uvloop"])


@pytest.fixture(params=_BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The name of the backend this test runs on."""
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def run(backend: str) -> Callable[..., Any]:
    """Run an async function (with arguments) to completion on a fresh scopeloop loop."""
    def runner(main: Callable[..., Any], *args: Any) -> Any:
        return scopeloop.run(main, *args, backend=backend)
    return runner


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--differential-examples", type=int, default=None, metavar="N",
        help="programs the differential test against Trio generates per backend "
             "(tests/test_differential_trio.py; default: a CI-sized budget)")
