"""The shared scenarios (../shared/scenarios) as tests, on every backend."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

import scopeloop

SCENARIOS = Path(__file__).resolve().parent / "scenarios"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"scenario_{name}", SCENARIOS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cancel_counter(run):
    scenario = load("cancel_counter")
    run(scenario.main)
    run(scenario.spawner)


def test_native_cancel_not_swallowed(run):
    run(load("native_cancel_not_swallowed").main)


@pytest.mark.parametrize("name", ["shield_ctrl_c", "start_ctrl_c"])
def test_ctrl_c(backend, name):
    """Real SIGINT to a child process; exit 130, no 'started twice', CPU well below wall."""
    env = dict(os.environ, SCOPELOOP_BACKEND=backend, SHIELD_S="1",
               PYTHONPATH=os.pathsep.join([str(Path(scopeloop.__file__).parent.parent),
                                           os.environ.get("PYTHONPATH", "")]))
    result = subprocess.run([sys.executable, str(SCENARIOS / "interrupt.py"), str(SCENARIOS / f"{name}.py")],
                            env=env, capture_output=True, text=True, timeout=60, cwd=SCENARIOS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "KeyboardInterrupt" in result.stdout
