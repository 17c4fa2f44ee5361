"""Run AnyIO's own test suite on scopeloop and on the stock loops, and diff.

    python integration/anyio_suite/run.py [--anyio VERSION] [--bridge off|on|both] [-- pytest args]

1. Downloads the AnyIO sdist of the pinned version with pip (``pip download
   --no-deps --no-binary :all:``) into ``integration/.cache/`` (never committed).
2. Creates ``integration/.cache/venv-anyio-X.Y.Z`` with the running interpreter and
   installs AnyIO from that sdist (with its ``trio`` extra), AnyIO's ``test``
   dependency group from its ``pyproject.toml``, and scopeloop (editable) from
   this checkout.  The venv is reused while its requirements are unchanged.
3. Extracts the sdist afresh and appends one line to ``tests/conftest.py`` that
   hands the ``anyio_backend`` parameters to ``scopeloop_anyio.py`` (this folder).
4. Runs the suite with pytest three times: ``stock``, ``scopeloop`` (scopeloop loops,
   the AnyIO bridge off: AnyIO's own asyncio code) and ``bridged`` (the bridge on:
   AnyIO on scopeloop's scopes and groups); see ``scopeloop_anyio.py`` (trio
   parametrizations are deselected).  ``--bridge off`` or ``--bridge on`` runs only
   one of the last two.  Each is compared with stock, test id by test id.  A test
   that passes on stock and not there is re-run alone on both (``--reruns`` times)
   to tell a real difference from a timing-dependent test.

In the ``bridged`` run the tests in ``bridge_differences.txt`` (this folder) may fail:
each is a deliberate difference, listed with its reason.

Exit status: 0 when every test that passes on stock passes in each scopeloop run (or is
listed as a deliberate difference), 1 when one does not, 2 when the run could not be
completed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import tomllib
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
CACHE = REPO / "integration" / ".cache"
ANYIO_VERSION = "4.16.0"  # pinned: bump deliberately, then re-check the differences
PASSING = frozenset({"passed", "xfailed", "xpassed"})
CONFTEST_HOOK = (
    "\n\n# Added by scopeloop's integration/anyio_suite/run.py: the asyncio parameters\n"
    "# and anyio_backend come from scopeloop_anyio.py (stock or scopeloop loops).\n"
    "from scopeloop_anyio import patch_conftest as _scopeloop_patch_conftest\n"
    "anyio_backend = _scopeloop_patch_conftest(globals())  # noqa: F811\n"
)


def log(message: str) -> None:
    print(message, flush=True)


def run_quiet(cmd: list[str], **kwargs: Any) -> None:
    """Run a setup command; show its output only if it fails."""
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          **kwargs)
    if proc.returncode:
        sys.stdout.write(proc.stdout)
        raise SystemExit(f"command failed ({proc.returncode}): {' '.join(cmd)}")


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def ensure_sdist(version: str, pip_python: Path) -> Path:
    folder = CACHE / "anyio-sdist"
    sdist = folder / f"anyio-{version}.tar.gz"
    if not sdist.exists():
        log(f"downloading the anyio {version} sdist into {folder}")
        folder.mkdir(parents=True, exist_ok=True)
        # Into a private folder first: runs for several interpreters may start together.
        with tempfile.TemporaryDirectory(dir=folder) as tmp:
            run_quiet([str(pip_python), "-m", "pip", "download", "--no-deps", "--no-binary",
                       ":all:", f"anyio=={version}", "-d", tmp])
            os.replace(Path(tmp) / sdist.name, sdist)
    return sdist


def test_requirements(sdist: Path, version: str) -> list[str]:
    """AnyIO's ``test`` dependency group, read from the sdist's pyproject.toml."""
    with tarfile.open(sdist) as tar:
        member = tar.extractfile(f"anyio-{version}/pyproject.toml")
        assert member is not None
        pyproject = tomllib.loads(member.read().decode())
    requirements = []
    for item in pyproject["dependency-groups"]["test"]:
        if isinstance(item, str):  # {include-group = ...} entries are not used by AnyIO
            requirements.append(" ".join(item.split()))
    return requirements


def python_tag() -> str:
    """The running interpreter's full version: 3.13.0 and 3.13.5 need venvs of their
    own (a venv runs the interpreter that made it, whoever installs into it)."""
    return platform.python_version()


def venv_made_by_this_python(venv: Path) -> bool:
    config = venv / "pyvenv.cfg"
    if not config.exists():
        return False
    for line in config.read_text().splitlines():
        key, _, value = line.partition("=")
        if key.strip() in ("version", "version_info"):
            return value.strip() == platform.python_version()
    return False


def ensure_venv(version: str, recreate: bool) -> tuple[Path, Path]:
    """The venv for this interpreter, with AnyIO, its test dependencies and scopeloop."""
    venv = CACHE / f"venv-anyio-{python_tag()}"
    python = venv_python(venv)
    if venv.exists() and (recreate or not venv_made_by_this_python(venv)):
        shutil.rmtree(venv)
    if not python.exists():
        log(f"creating {venv}")
        run_quiet([sys.executable, "-m", "venv", str(venv)])
    sdist = ensure_sdist(version, python)
    requirements = test_requirements(sdist, version)
    wanted = json.dumps({"anyio": version, "sdist": hashlib.sha256(sdist.read_bytes()).hexdigest(),
                         "requirements": requirements, "python": sys.version}, sort_keys=True)
    stamp = venv / "scopeloop-anyio-stamp.json"
    if not stamp.exists() or stamp.read_text() != wanted:
        log(f"installing anyio {version} (sdist) with its test dependencies into {venv}")
        run_quiet([str(python), "-m", "pip", "install", "-q", "--upgrade", "pip"])
        run_quiet([str(python), "-m", "pip", "install", "-q", f"{sdist}[trio]", *requirements])
        run_quiet([str(python), "-m", "pip", "install", "-q", "-e", str(REPO)])
        stamp.write_text(wanted)
    return python, sdist


def prepare_tree(sdist: Path, version: str) -> Path:
    """A fresh copy of the sdist with the conftest hook appended."""
    root = CACHE / f"anyio-tests-{python_tag()}"
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    with tarfile.open(sdist) as tar:
        tar.extractall(root, filter="data")
    tree = root / f"anyio-{version}"
    conftest = tree / "tests" / "conftest.py"
    conftest.write_text(conftest.read_text(encoding="utf-8") + CONFTEST_HOOK, encoding="utf-8")
    return tree


def run_pytest(python: Path, tree: Path, config: str, stem: str, budget_s: float,
               args: list[str]
               ) -> tuple[dict[str, str], dict[str, float], int, int | None, float]:
    """One pytest run: {nodeid: outcome}, {nodeid: seconds}, the number of scopeloop
    loops it created, pytest's exit status, wall seconds."""
    report = tree.parent / f"{stem}.json"
    logfile = tree.parent / f"{stem}.log"
    report.unlink(missing_ok=True)
    # "bridged" is the scopeloop configuration with scopeloop's AnyIO bridge left on.
    env = dict(os.environ, SCOPELOOP_ANYIO_LOOPS="stock" if config == "stock" else "scopeloop",
               SCOPELOOP_ANYIO_BRIDGE="1" if config == "bridged" else "0",
               SCOPELOOP_ANYIO_REPORT=str(report),
               PYTHONPATH=os.pathsep.join(filter(None, [str(HERE),
                                                        os.environ.get("PYTHONPATH")])),
               PYTHONHASHSEED="0")
    for name in ("SCOPELOOP_BACKEND", "SCOPELOOP_DEBUG", "PYTHONASYNCIODEBUG", "PYTEST_ADDOPTS"):
        env.pop(name, None)
    cmd = [str(python), "-m", "pytest", "-p", "scopeloop_anyio", "-p", "no:cacheprovider",
           "-q", "--no-header", "-p", "no:randomly", *args]
    started = time.monotonic()
    with open(logfile, "w", encoding="utf-8") as out:
        try:
            code: int | None = subprocess.run(cmd, cwd=tree, env=env, stdout=out,
                                              stderr=subprocess.STDOUT,
                                              stdin=subprocess.DEVNULL,
                                              timeout=max(budget_s, 1)).returncode
        except subprocess.TimeoutExpired:
            code = None
    elapsed = time.monotonic() - started
    outcomes, seconds = {}, {}
    loops = 0
    if report.exists():
        data = json.loads(report.read_text())
        loops = data["scopeloop_loops"]
        for nodeid, (outcome, duration) in data["tests"].items():
            outcomes[nodeid], seconds[nodeid] = outcome, duration
    return outcomes, seconds, loops, code, elapsed


def listed_differences(path: Path) -> dict[str, str]:
    """The tests (ids without their parameters) in ``path``, with why each differs."""
    listed = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            test, _, why = line.partition(" -- ")
            listed[test.strip()] = why.strip()
    return listed


def counts(outcomes: dict[str, str]) -> str:
    c = Counter(outcomes.values())
    passed = sum(c[o] for o in PASSING)
    return (f"run={len(outcomes)} passed={passed} failed={c['failed']} errors={c['error']} "
            f"skipped={c['skipped']}")


def compare(python: Path, tree: Path, config: str, stock: dict[str, str],
            scoped: dict[str, str], listed: dict[str, str], reruns: int,
            deadline: float) -> dict[str, Any]:
    """Every test that passes on stock and not on ``config``: re-run alone on both,
    then a regression, a listed difference (``listed``) or flaky."""
    differing = sorted(t for t in set(stock) | set(scoped)
                       if stock.get(t, "absent") != scoped.get(t, "absent"))
    suspects = [t for t in differing
                if stock.get(t) in PASSING and scoped.get(t, "absent") not in PASSING]
    # Re-run the suspects together, alone, on both configurations: a difference is
    # confirmed when it shows in every round.
    remaining = list(suspects)
    for n in range(reruns):
        if not remaining:
            break
        again = {c: run_pytest(python, tree, c, f"rerun{n}-{c}", deadline - time.monotonic(),
                               remaining)[0] for c in ("stock", config)}
        remaining = [t for t in remaining if again["stock"].get(t) in PASSING
                     and again[config].get(t, "absent") not in PASSING]
    expected = [t for t in remaining if t.partition("[")[0] in listed]
    confirmed = [t for t in remaining if t not in expected]
    flaky = [t for t in suspects if t not in remaining]
    # Only tests this run collected can be stale (a run of some files leaves the
    # others' entries alone).
    ran = {t.partition("[")[0] for t in stock}
    stale = sorted(test for test in listed if test in ran
                   and not any(t.partition("[")[0] == test for t in remaining))

    log(f"\ntests whose outcome differs (stock -> {config}): {len(differing)}")
    for t in differing:
        mark = ("REGRESSION" if t in confirmed else
                "listed (bridge_differences.txt)" if t in expected else
                "flaky (passed when re-run)" if t in flaky else "")
        log(f"  {t}: {stock.get(t, 'absent')} -> {scoped.get(t, 'absent')} {mark}")
    for test in stale:
        log(f"  listed in bridge_differences.txt but not failing now: {test} "
            f"(remove it once this is confirmed)")
    if confirmed:
        log(f"\nthe failures are in {tree.parent / (config + '.log')} and, re-run, in "
            f"{tree.parent / f'rerun{reruns - 1}-{config}.log'}")
    return {"differing": {t: [stock.get(t, "absent"), scoped.get(t, "absent")]
                          for t in differing},
            "regressions": confirmed, "listed": expected, "flaky": flaky, "stale": stale}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--anyio", default=ANYIO_VERSION, help=f"AnyIO version "
                        f"(default: the pinned {ANYIO_VERSION})")
    parser.add_argument("--timeout", type=float, default=2400.0,
                        help="seconds the whole run may take (default 2400)")
    parser.add_argument("--reruns", type=int, default=2,
                        help="re-runs that confirm a difference (default 2)")
    parser.add_argument("--recreate-venv", action="store_true")
    parser.add_argument("--bridge", choices=("off", "on", "both"), default="both",
                        help="scopeloop's AnyIO bridge (scopeloop.anyio_compat) in the "
                             "scopeloop runs: off checks AnyIO's own asyncio code on "
                             "scopeloop loops, on checks AnyIO on scopeloop's scopes and "
                             "groups; both (the default) runs each against one stock run")
    parser.add_argument("--anyio-bridge", dest="bridge", action="store_const", const="on",
                        help="the same as --bridge on")
    parser.add_argument("pytest_args", nargs="*",
                        help="extra pytest arguments after --, e.g. -- tests/test_taskgroups.py")
    args = parser.parse_args()
    configs = ["stock"] + {"off": ["scopeloop"], "on": ["bridged"],
                           "both": ["scopeloop", "bridged"]}[args.bridge]
    deadline = time.monotonic() + args.timeout
    started = time.monotonic()

    python, sdist = ensure_venv(args.anyio, args.recreate_venv)
    tree = prepare_tree(sdist, args.anyio)
    setup_s = time.monotonic() - started
    log(f"AnyIO {args.anyio} test suite from {sdist.name}, Python {sys.version.split()[0]}, "
        f"venv {python.parent.parent} (setup {setup_s:.0f}s)")

    results: dict[str, dict[str, str]] = {}
    durations: dict[str, dict[str, float]] = {}
    incomplete = []
    for config in configs:
        outcomes, seconds, loops, code, elapsed = run_pytest(
            python, tree, config, config, deadline - time.monotonic(), args.pytest_args)
        results[config], durations[config] = outcomes, seconds
        log(f"{config:9s} {counts(outcomes)} scopeloop-loops={loops} pytest-exit={code} "
            f"({elapsed:.0f}s, {sum(seconds.values()):.0f}s in tests; "
            f"log {tree.parent / (config + '.log')})")
        if config != "stock" and outcomes and not loops:
            incomplete.append(f"{config}: no scopeloop loop was created (hook not applied?)")
        # pytest exits 0 (all passed) or 1 (some failed); anything else means the
        # session itself broke (collection error, internal error, interrupted).
        if code not in (0, 1) or not outcomes:
            incomplete.append(f"{config}: pytest exit status {code}")

    stock = results["stock"]
    summary: dict[str, Any] = {"anyio": args.anyio, "python": sys.version.split()[0],
                               "stock": counts(stock), "incomplete": incomplete}
    verdicts, confirmed = [], []
    for config in configs[1:]:
        listed = listed_differences(HERE / "bridge_differences.txt") if config == "bridged" else {}
        found = compare(python, tree, config, stock, results[config], listed, args.reruns,
                        deadline)
        # Diagnostics only (timing is not pass/fail): the tests that slowed down most.
        slower = sorted(((durations[config].get(t, 0.0) - s, t)
                         for t, s in durations["stock"].items()), reverse=True)[:10]
        found["slowest_differences"] = {t: [durations["stock"][t], durations[config].get(t)]
                                        for _, t in slower}
        summary[config] = {"counts": counts(results[config]), **found}
        confirmed += found["regressions"]
        passed = sum(1 for o in results[config].values() if o in PASSING)
        verdicts.append(
            f"{config} {passed}/{len(results[config])} passed"
            + (f", FAILED: {len(found['regressions'])} test(s) pass on stock and fail here"
               if found["regressions"] else
               f", OK except the {len(found['listed'])} listed in bridge_differences.txt"
               if found["listed"] else ", OK"))
    summary["seconds"] = round(time.monotonic() - started)
    (tree.parent / "summary.json").write_text(json.dumps(summary, indent=2))
    status = 1 if confirmed else 2 if incomplete else 0
    stock_passed = sum(1 for o in stock.values() if o in PASSING)
    log(f"\nanyio {args.anyio} suite (Python {summary['python']}, {summary['seconds']}s): "
        f"stock {stock_passed}/{len(stock)} passed; " + "; ".join(verdicts)
        + (f". INCOMPLETE: {'; '.join(incomplete)}" if incomplete else "")
        + (". Every test that passes on stock passes on scopeloop, except those listed."
           if status == 0 else ""))
    return status


if __name__ == "__main__":
    sys.exit(main())
