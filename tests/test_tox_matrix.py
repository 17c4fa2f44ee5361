"""The test matrix: tox runs every interpreter it lists and fails on one it cannot find."""

from __future__ import annotations

import configparser
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _tox() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(ROOT / "tox.ini")
    return parser


def _classified_versions() -> set[str]:
    text = (ROOT / "pyproject.toml").read_text()
    return set(re.findall(r"Programming Language :: Python :: (3\.\d+)\"", text))


def test_missing_interpreters_fail_the_run() -> None:
    # tox's default would report success after running only the environments whose
    # interpreter happened to be on PATH.
    assert _tox()["tox"]["skip_missing_interpreters"].strip() == "false"


def test_every_classified_python_and_3135_is_in_the_default_matrix() -> None:
    env_list = _tox()["tox"]["env_list"]
    factors = re.search(r"py\{([\d,]+)\}-\{asyncio,uvloop\}", env_list)
    assert factors, env_list
    listed = set(factors.group(1).split(","))
    wanted = {v.replace(".", "") for v in _classified_versions()} | {"3135"}
    assert wanted <= listed, f"tox.ini env_list lacks {sorted(wanted - listed)}"


def test_3135_environments_name_their_interpreter() -> None:
    # "py3135" is no Python spec tox understands: without an explicit base_python it
    # would quietly run on tox's own interpreter.
    base = _tox()["testenv"]["base_python"]
    assert re.search(r"py3135:\s*\{env:SCOPELOOP_PYTHON_3135:[^}]*python3\.13\}", base), base


def test_toxfile_finds_pyenv_interpreters(tmp_path: Path) -> None:
    pyenv_bin = tmp_path / ".pyenv" / "versions" / "3.12.9" / "bin"
    pyenv_bin.mkdir(parents=True)
    (tmp_path / ".pyenv" / "versions" / "2.7.18" / "bin").mkdir(parents=True)
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    probe = ("import os, runpy; runpy.run_path(os.environ['TOXFILE']); "
             "print(os.environ['PATH'])")
    out = subprocess.run([sys.executable, "-c", probe], env={**env, "TOXFILE": str(ROOT / "toxfile.py")},
                         capture_output=True, text=True, check=True).stdout.strip()
    # Appended after what was on PATH, and only Python 3.11+.
    assert out.split(os.pathsep) == ["/usr/bin", "/bin", str(pyenv_bin)]
