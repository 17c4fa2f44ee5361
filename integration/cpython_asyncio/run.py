"""Run CPython's own ``test.test_asyncio`` on scopeloop and on the stock loop, and diff.

    python integration/cpython_asyncio/run.py [--backend asyncio|uvloop|both]

The interpreter running this script is the one tested (when it has no
``test.test_asyncio``, a notice is printed and the exit status is 0).  Its test
modules are run once per configuration, each module in its own subprocess
(``--jobs`` of them at a time):

* ``stock``: the stdlib policy; for the uvloop backend the same policy making plain
  ``uvloop.Loop`` loops (``--uvloop-stock-policy uvloop``: ``uvloop.EventLoopPolicy``).
* ``scopeloop``: ``scopeloop.EventLoopPolicy(backend)``, re-installed whenever a test
  resets the policy (``asyncio.set_event_loop_policy(None)`` and the lazy default
  both mean "a fresh scopeloop policy" in that subprocess).  Where a test picks its
  loop or Task class itself, scopeloop stands in too: ``asyncio.SelectorEventLoop``
  and ``asyncio.EventLoop`` are scopeloop's asyncio loop (asyncio backend), and the
  test classes that run the Task test-suite with the C Task run it with
  ``scopeloop.Task`` (both backends).  The ``on_config`` count says how many tests
  ran on a scopeloop loop or Task.

Every test's outcome is recorded by a small unittest result class (one JSON line per
event, flushed at once, so a subprocess that dies still says which test it was in).
A test that runs longer than ``--test-timeout`` seconds is stopped by
``faulthandler.dump_traceback_later(exit=True)``, recorded as ``timeout`` and the
module is resumed after it.  Then, per backend: **a test that passes on stock must
pass on scopeloop**.  A test that differs is re-run alone on both configurations
(``--reruns`` times) to tell a real difference from a timing-dependent test; only a
confirmed difference fails the run.  Exit status: 0 when no test passes on stock and
fails on scopeloop, 1 otherwise, 2 when the run could not be completed (global
timeout, broken harness).

Nothing is excluded unless listed in ``EXCLUDED`` below with the reason.
"""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import importlib
import importlib.util
import json
import os
import subprocess
import sys
import time
import unittest
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
PACKAGE = "test.test_asyncio"
CONFIGS = ("stock", "scopeloop")

# Test modules not run, with the reason (module name -> why).  Keep it empty unless a
# module hangs or crashes on the *stock* loop too, or cannot run on this platform.
EXCLUDED: dict[str, str] = {}

# Outcomes: "passed" and "xfail" (expected failure) count as passing.
PASSING = frozenset({"passed", "xfail"})


# ---------------------------------------------------------------------------------
# Child side: one configuration, one test module.
# ---------------------------------------------------------------------------------

class _LoopCounter:
    """Counts the event loops the installed policy creates (per test, reset by the result)."""

    created = 0


def _policy_factory(config: str, backend: str, uvloop_policy: str) -> type:
    """The policy class a configuration installs (and re-installs on reset).

    The stock baseline of the uvloop backend is, by default, the stdlib policy making
    plain ``uvloop.Loop`` loops: scopeloop's policy is a stdlib policy subclass too,
    so the loop is then the only difference.  ``uvloop.EventLoopPolicy`` (option
    ``--uvloop-stock-policy uvloop``) also drops the child-watcher API of 3.11/3.12,
    which makes ~90 tests fail in setUp on stock, leaving them uncompared.
    """
    if config == "scopeloop":
        import scopeloop
        base: type = scopeloop.EventLoopPolicy

        class Policy(base):  # type: ignore[valid-type,misc]
            def __init__(self) -> None:
                super().__init__(backend)

            def new_event_loop(self) -> asyncio.AbstractEventLoop:
                _LoopCounter.created += 1
                return super().new_event_loop()  # type: ignore[no-any-return]
    elif backend == "uvloop" and uvloop_policy == "uvloop":
        import uvloop
        base = uvloop.EventLoopPolicy

        class Policy(base):  # type: ignore[valid-type,misc,no-redef]
            def new_event_loop(self) -> asyncio.AbstractEventLoop:
                _LoopCounter.created += 1
                return super().new_event_loop()  # type: ignore[no-any-return]
    else:
        base = asyncio.DefaultEventLoopPolicy
        if backend == "uvloop":
            import uvloop
            loop_class = uvloop.Loop
        else:
            loop_class = base._loop_factory  # type: ignore[attr-defined]

        class Policy(base):  # type: ignore[valid-type,misc,no-redef]
            _loop_factory = loop_class

            def new_event_loop(self) -> asyncio.AbstractEventLoop:
                _LoopCounter.created += 1
                return super().new_event_loop()  # type: ignore[no-any-return]

    # The tests see the class under the name of the policy it stands for.
    Policy.__name__ = Policy.__qualname__ = base.__name__
    Policy.__module__ = base.__module__
    return Policy


def _install_policy(config: str, backend: str, uvloop_policy: str) -> None:
    """Install the configuration's policy and make every reset re-install it.

    Many test modules call ``asyncio.set_event_loop_policy(None)`` in tearDown or
    tearDownModule, which would bring back the stdlib policy for the rest of the
    run; here None means "a fresh policy of this configuration" instead.  The lazy
    initialisation in ``get_event_loop_policy()`` is redirected the same way.
    """
    from asyncio import events

    policy_cls = _policy_factory(config, backend, uvloop_policy)
    original_set = events.set_event_loop_policy

    def set_event_loop_policy(policy: Any) -> None:
        original_set(policy_cls() if policy is None else policy)

    set_event_loop_policy.__doc__ = original_set.__doc__

    def init_event_loop_policy() -> None:
        with events._lock:  # type: ignore[attr-defined]
            if events._event_loop_policy is None:  # type: ignore[attr-defined]
                events._event_loop_policy = policy_cls()  # type: ignore[attr-defined]

    events.set_event_loop_policy = set_event_loop_policy
    asyncio.set_event_loop_policy = set_event_loop_policy
    events._init_event_loop_policy = init_event_loop_policy  # type: ignore[attr-defined]
    original_set(policy_cls())


def _stand_in_loop_class(backend: str) -> None:
    """Make tests that build ``asyncio.SelectorEventLoop(...)`` (or, on 3.13+,
    ``asyncio.EventLoop``) themselves get scopeloop's.

    Most of test_events, test_sock_lowlevel, test_sendfile, test_server... construct
    their loop explicitly rather than through the policy.  scopeloop's asyncio loop is
    a SelectorEventLoop subclass with the same constructor, so in the scopeloop
    configuration of the asyncio backend the public name points to it (a subclass
    that counts instances).  Loops made by an explicit ``DefaultEventLoopPolicy()``
    stay stock: the tests asked for those by name.
    """
    if backend != "asyncio":
        return  # uvloop takes no selector; those tests exercise the stdlib loop on both sides
    from scopeloop.loop import AsyncioEventLoop

    class SelectorEventLoop(AsyncioEventLoop):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            _LoopCounter.created += 1
            super().__init__(*args, **kwargs)

    SelectorEventLoop.__qualname__ = AsyncioEventLoop.__qualname__
    SelectorEventLoop.__module__ = AsyncioEventLoop.__module__
    asyncio.SelectorEventLoop = SelectorEventLoop  # type: ignore[misc]
    asyncio.unix_events.SelectorEventLoop = SelectorEventLoop  # type: ignore[attr-defined]
    if hasattr(asyncio, "EventLoop"):  # 3.13+: the platform's default loop class, same thing
        asyncio.EventLoop = SelectorEventLoop
        asyncio.unix_events.EventLoop = SelectorEventLoop  # type: ignore[attr-defined]


def _stand_in_task_class(module: Any) -> list[str]:
    """Run the test classes written for the C Task with ``scopeloop.Task`` instead.

    test_tasks (and test_eager_task_factory, test_futures2) run the same tests once
    per Task implementation, choosing it with a ``Task`` class attribute.  In the
    scopeloop configuration the C Task classes get scopeloop.Task (a C Task
    subclass), so the whole Task test-suite checks that scopeloop.Task behaves like
    the stock one.  Classes built by ``add_subclass_tests`` are rebuilt on top of it.
    Returns the names of the classes changed.
    """
    import scopeloop
    c_task = getattr(asyncio.tasks, "_CTask", None)
    if c_task is None:
        return []
    changed = []
    add_subclass_tests = getattr(module, "add_subclass_tests", None)
    for name, cls in sorted(vars(module).items()):
        if not (isinstance(cls, type) and issubclass(cls, unittest.TestCase)):
            continue
        task = cls.__dict__.get("Task")
        if task is c_task:
            cls.Task = scopeloop.Task
        elif (isinstance(task, type) and task.__bases__[-1] is c_task and add_subclass_tests
              and task.__qualname__.startswith("add_subclass_tests.")):
            # It replaced Task and Future by subclasses that count calls; start over
            # from scopeloop.Task and the original Future.
            cls.Task = scopeloop.Task
            cls.Future = cls.Future.__bases__[-1]
            add_subclass_tests(cls)
        else:
            continue
        changed.append(name)
    return changed


def _uses_scopeloop_task(test: Any) -> bool:
    import scopeloop
    task = getattr(type(test), "Task", None)
    return isinstance(task, type) and issubclass(task, scopeloop.Task)


class JsonResult(unittest.TestResult):
    """Writes one JSON line per test: its id, outcome, duration and a short detail."""

    def __init__(self, out: Any, test_timeout: float, scopeloop: bool) -> None:
        super().__init__()
        self._scopeloop = scopeloop
        self._out = out
        self._test_timeout = test_timeout
        self._outcome: str | None = None
        self._detail = ""
        self._started: float | None = None

    def _emit(self, record: dict[str, Any]) -> None:
        self._out.write(json.dumps(record) + "\n")
        self._out.flush()

    def startTest(self, test: unittest.TestCase) -> None:
        super().startTest(test)
        self._outcome, self._detail = None, ""
        _LoopCounter.created = 0
        self._emit({"event": "start", "id": test.id()})
        # A hang must not stall the run: dump every thread's stack and exit; the
        # parent records the test as a timeout and resumes the module after it.
        faulthandler.dump_traceback_later(self._test_timeout, exit=True)
        self._started = time.perf_counter()

    def stopTest(self, test: unittest.TestCase) -> None:
        faulthandler.cancel_dump_traceback_later()
        super().stopTest(test)
        # Tests of a skipped class may be reported without startTest (3.12+).
        seconds = 0.0 if self._started is None else time.perf_counter() - self._started
        self._emit({"event": "end", "id": test.id(), "outcome": self._outcome or "passed",
                    "seconds": round(seconds, 3),
                    "loops": _LoopCounter.created, "task_class": self._task_class(test),
                    "detail": self._detail[-4000:]})
        self._outcome, self._detail, self._started = None, "", None
        _LoopCounter.created = 0

    def _task_class(self, test: unittest.TestCase) -> bool:
        return self._scopeloop and _uses_scopeloop_task(test)

    def _set(self, outcome: str, detail: str = "") -> None:
        # The first failure wins (a failing subtest, then an error in tearDown...).
        if self._outcome in (None, "passed"):
            self._outcome, self._detail = outcome, detail

    def addSuccess(self, test: unittest.TestCase) -> None:
        super().addSuccess(test)
        self._set("passed")

    def addFailure(self, test: Any, err: Any) -> None:
        super().addFailure(test, err)
        self._record_problem(test, "failed", self.failures[-1][1])

    def addError(self, test: Any, err: Any) -> None:
        super().addError(test, err)
        self._record_problem(test, "error", self.errors[-1][1])

    def _record_problem(self, test: Any, outcome: str, detail: str) -> None:
        if isinstance(test, unittest.TestCase):
            self._set(outcome, detail)
        else:
            # setUpModule/setUpClass/tearDownClass errors come with a placeholder
            # "test" that never goes through startTest/stopTest: record it directly.
            self._emit({"event": "end", "id": test.id(), "outcome": outcome,
                        "seconds": 0.0, "loops": 0, "detail": detail[-4000:]})

    def addSkip(self, test: Any, reason: str) -> None:
        super().addSkip(test, reason)
        if isinstance(test, unittest.TestCase):
            self._set("skipped", reason)
        else:
            self._emit({"event": "end", "id": test.id(), "outcome": "skipped",
                        "seconds": 0.0, "loops": 0, "detail": reason})

    def addExpectedFailure(self, test: unittest.TestCase, err: Any) -> None:
        super().addExpectedFailure(test, err)
        self._set("xfail")

    def addUnexpectedSuccess(self, test: unittest.TestCase) -> None:
        super().addUnexpectedSuccess(test)
        self._set("xpass")

    def addSubTest(self, test: unittest.TestCase, subtest: Any, err: Any) -> None:
        super().addSubTest(test, subtest, err)
        if err is not None:
            detail = f"{subtest.id()}\n{self._exc_info_to_string(err, test)}"  # type: ignore[attr-defined]
            failed = issubclass(err[0], test.failureException)
            self._set("failed" if failed else "error", detail)


def _iter_tests(suite: unittest.TestSuite) -> Iterator[unittest.TestCase]:
    for item in suite:
        if isinstance(item, unittest.TestSuite):
            yield from _iter_tests(item)
        else:
            yield item


def child_main(args: argparse.Namespace) -> int:
    _install_policy(args.config, args.backend, args.uvloop_stock_policy)
    scoped = args.config == "scopeloop"
    if scoped:
        _stand_in_loop_class(args.backend)
    done = set(json.loads(Path(args.skip_ids).read_text())) if args.skip_ids else set()
    out = open(args.out, "a", encoding="utf-8")
    module_name = f"{PACKAGE}.{args.module}"
    try:
        module = importlib.import_module(module_name)
    except unittest.SkipTest as exc:  # e.g. the Windows-only modules
        out.write(json.dumps({"event": "end", "id": module_name, "outcome": "skipped",
                              "seconds": 0.0, "loops": 0, "detail": str(exc)}) + "\n")
        out.write(json.dumps({"event": "module-done", "id": module_name}) + "\n")
        out.close()
        return 0
    if scoped:
        changed = _stand_in_task_class(module)
        if changed:
            print(f"scopeloop.Task stands in for the C Task in: {', '.join(changed)}")
    loader = unittest.TestLoader()
    if args.only:
        suite = loader.loadTestsFromNames(args.only)
    else:
        suite = loader.loadTestsFromModule(module)
    tests = [t for t in _iter_tests(suite) if t.id() not in done]
    result = JsonResult(out, args.test_timeout, scoped)
    unittest.TestSuite(tests).run(result)
    out.write(json.dumps({"event": "module-done", "id": module_name}) + "\n")
    out.close()
    return 0


# ---------------------------------------------------------------------------------
# Parent side: every module under every configuration, then the diff.
# ---------------------------------------------------------------------------------

class Budget:
    """The global time limit shared by every subprocess."""

    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds

    def left(self) -> float:
        return self.deadline - time.monotonic()


def _read_records(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut short by a kill
            pass
    return records


def run_module(module: str, config: str, backend: str, work: Path, args: argparse.Namespace,
               budget: Budget, only: list[str] | None = None, tag: str = ""
               ) -> tuple[dict[str, dict[str, Any]], str | None]:
    """Run one test module (or only some of its tests) in fresh subprocesses.

    Returns the outcome of each test id and an error message if the module could not
    be completed.  After a per-test timeout or a crash the module is resumed in a new
    subprocess, skipping every test that already has an outcome.
    """
    stem = f"{backend}-{config}-{module}{tag}"
    out = work / f"{stem}.jsonl"
    log = work / f"{stem}.log"
    skip_file = work / f"{stem}.skip.json"
    for path in (out, log, skip_file):
        path.unlink(missing_ok=True)
    results: dict[str, dict[str, Any]] = {}
    for attempt in range(1, 1000):
        left = budget.left()
        if left <= 0:
            return results, "global timeout reached"
        skip_file.write_text(json.dumps(sorted(results)))
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child",
               "--config", config, "--backend", backend, "--module", module,
               "--out", str(out), "--skip-ids", str(skip_file),
               "--test-timeout", str(args.test_timeout),
               "--uvloop-stock-policy", args.uvloop_stock_policy]
        for test_id in only or ():
            cmd += ["--only", test_id]
        env = dict(os.environ, PYTHONFAULTHANDLER="1", PYTHONHASHSEED="0")
        env.pop("SCOPELOOP_BACKEND", None)
        env.pop("PYTHONASYNCIODEBUG", None)
        with open(log, "a", encoding="utf-8") as log_file:
            log_file.write(f"--- attempt {attempt}: {' '.join(cmd)}\n")
            log_file.flush()
            try:
                proc = subprocess.run(cmd, stdout=log_file, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, env=env, timeout=left,
                                      cwd=work)
                code: int | None = proc.returncode
            except subprocess.TimeoutExpired:
                code = None
        in_flight = None
        finished = False
        for record in _read_records(out):
            if record["event"] == "start":
                in_flight = record["id"]
            elif record["event"] == "end":
                results[record["id"]] = record
                if record["id"] == in_flight:
                    in_flight = None
            elif record["event"] == "module-done":
                finished = True
        if finished and code == 0:
            return results, None
        if code is None:
            return results, "global timeout reached"
        if in_flight is None:
            return results, f"subprocess exited with status {code} outside any test (see {log})"
        timed_out = code == 1 and "Timeout (" in log.read_text(encoding="utf-8", errors="replace")
        results[in_flight] = {"event": "end", "id": in_flight,
                              "outcome": "timeout" if timed_out else "crashed",
                              "seconds": args.test_timeout if timed_out else 0.0, "loops": 0,
                              "detail": f"subprocess exit status {code}; see {log}"}
        # Drop the partial output so the next attempt appends to a clean file.
        out.write_text("".join(json.dumps(r) + "\n" for r in results.values()))
    return results, "too many restarts"


def discover_modules(package_dir: Path, selected: list[str] | None) -> list[str]:
    modules = sorted(p.stem for p in package_dir.glob("test_*.py"))
    if selected:
        unknown = set(selected) - set(modules)
        if unknown:
            raise SystemExit(f"unknown test modules: {', '.join(sorted(unknown))}")
        modules = [m for m in modules if m in selected]
    return modules


def summarize(results: dict[str, dict[str, Any]]) -> dict[str, int]:
    counts = Counter(r["outcome"] for r in results.values())
    return {
        "run": sum(counts.values()),
        "passed": counts["passed"] + counts["xfail"],
        "failed": counts["failed"] + counts["xpass"],
        "errors": counts["error"] + counts["timeout"] + counts["crashed"],
        "skipped": counts["skipped"],
        "timeouts": counts["timeout"] + counts["crashed"],
        # Tests that ran on a loop of the configuration (policy or stand-in class) or,
        # in the scopeloop configuration, with scopeloop.Task as the Task class.
        "on_config": sum(1 for r in results.values() if r.get("loops") or r.get("task_class")),
    }


def parent_main(args: argparse.Namespace) -> int:
    started = time.monotonic()
    spec = importlib.util.find_spec(PACKAGE) if importlib.util.find_spec("test") else None
    if spec is None or not spec.submodule_search_locations:
        print(f"NOTICE: {PACKAGE} is not installed with {sys.executable} "
              f"(Python {sys.version.split()[0]}); nothing to run.")
        return 0
    package_dir = Path(list(spec.submodule_search_locations)[0])
    backends = ["asyncio", "uvloop"] if args.backend == "both" else [args.backend]
    if "uvloop" in backends and importlib.util.find_spec("uvloop") is None:
        print("NOTICE: uvloop is not installed; running the asyncio backend only.")
        backends.remove("uvloop")
    import scopeloop
    modules = discover_modules(package_dir, args.modules)
    work = Path(args.work_dir or REPO / "integration" / ".cache" / "cpython_asyncio" /
                f"py{sys.version_info.major}.{sys.version_info.minor}").resolve()
    work.mkdir(parents=True, exist_ok=True)
    for stale in [*work.glob("*.jsonl"), *work.glob("*.log"), *work.glob("*.skip.json")]:
        stale.unlink()
    print(f"CPython {sys.version.split()[0]} test.test_asyncio from {package_dir}")
    print(f"scopeloop from {Path(scopeloop.__file__).parent}; logs in {work}")
    for name, why in EXCLUDED.items():
        print(f"excluded: {name}: {why}")
    budget = Budget(args.timeout)
    all_results: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    harness_errors: list[str] = []
    # Every (backend, configuration, module) is one job; --jobs of them run at once.
    # Stock and scopeloop runs of a module are queued next to each other, so they
    # see similar machine load.
    jobs = [(backend, config, module) for backend in backends for module in modules
            for config in CONFIGS if module not in EXCLUDED]
    seconds: Counter[tuple[str, str]] = Counter()

    def run_job(job: tuple[str, str, str]) -> tuple[tuple[str, str, str], Any, float]:
        t0 = time.monotonic()
        backend, config, module = job
        return job, run_module(module, config, backend, work, args, budget), \
            time.monotonic() - t0

    for backend in backends:
        for config in CONFIGS:
            all_results[backend, config] = {}
    pending: dict[tuple[str, str], dict[str, dict[str, dict[str, Any]]]] = {}
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        for (backend, config, module), (results, error), took in pool.map(run_job, jobs):
            all_results[backend, config].update(results)
            seconds[backend, config] += took
            if error:
                harness_errors.append(f"{backend}/{config}/{module}: {error}")
                print(f"  !! {backend}/{config}/{module}: {error}", flush=True)
            # Progress: one line per module once both configurations have run it.
            both = pending.setdefault((backend, module), {})
            both[config] = results
            if len(both) == len(CONFIGS):
                print(f"  {backend:7s} {module:24s} " + "  ".join(
                    f"{c} {summarize(both[c])['passed']}/{len(both[c])}" for c in CONFIGS),
                    flush=True)
    for backend in backends:
        for config in CONFIGS:
            counts = summarize(all_results[backend, config])
            print(f"{backend:8s} {config:9s} " +
                  " ".join(f"{k}={v}" for k, v in counts.items()) +
                  f" ({seconds[backend, config]:.0f}s in subprocesses)", flush=True)

    regressions: list[str] = []
    report: dict[str, Any] = {"python": sys.version.split()[0], "backends": {}}
    for backend in backends:
        stock, scoped = all_results[backend, "stock"], all_results[backend, "scopeloop"]
        differing = sorted(set(stock) | set(scoped), key=str)
        differing = [t for t in differing
                     if stock.get(t, {}).get("outcome") != scoped.get(t, {}).get("outcome")]
        suspects = [t for t in differing
                    if stock.get(t, {}).get("outcome") in PASSING
                    and scoped.get(t, {}).get("outcome") not in PASSING]
        confirmed, flaky = confirm(suspects, backend, work, args, budget)
        print(f"\n[{backend}] tests whose outcome differs (stock -> scopeloop): {len(differing)}")
        for t in differing:
            a = stock.get(t, {}).get("outcome", "absent")
            b = scoped.get(t, {}).get("outcome", "absent")
            mark = ("REGRESSION" if t in confirmed else
                    "flaky (passed when re-run)" if t in flaky else "")
            print(f"  {t}: {a} -> {b} {mark}")
        for t in confirmed:
            detail = scoped.get(t, {}).get("detail", "").rstrip()
            print(f"\n--- {backend} scopeloop: {t}\n{detail}")
        regressions += [f"{backend}: {t}" for t in confirmed]
        report["backends"][backend] = {
            "stock": summarize(stock), "scopeloop": summarize(scoped),
            "differing": {t: [stock.get(t, {}).get("outcome", "absent"),
                              scoped.get(t, {}).get("outcome", "absent")] for t in differing},
            "regressions": confirmed, "flaky": flaky,
        }
    elapsed = time.monotonic() - started
    report["seconds"] = round(elapsed)
    report["harness_errors"] = harness_errors
    (work / "summary.json").write_text(json.dumps(report, indent=2))
    parts = [f"{b}: stock {report['backends'][b]['stock']['passed']}/"
             f"{report['backends'][b]['stock']['run']} passed, scopeloop "
             f"{report['backends'][b]['scopeloop']['passed']}/"
             f"{report['backends'][b]['scopeloop']['run']} passed" for b in backends]
    status = 1 if regressions else 2 if harness_errors else 0
    verdict = ("FAILED: " + f"{len(regressions)} test(s) pass on stock and fail on scopeloop"
               if regressions else "INCOMPLETE: " + "; ".join(harness_errors)
               if harness_errors else "OK: no test that passes on stock fails on scopeloop")
    print(f"\ncpython test_asyncio (Python {report['python']}, {elapsed:.0f}s): "
          f"{'; '.join(parts)}. {verdict}")
    return status


def _rerunnable(test_id: str) -> bool:
    # "setUpClass (test.test_asyncio.test_x.Class)" and the like are fixtures, not tests.
    return test_id.startswith(PACKAGE + ".") and "(" not in test_id


def confirm(suspects: list[str], backend: str, work: Path, args: argparse.Namespace,
            budget: Budget) -> tuple[list[str], list[str]]:
    """Re-run the suspects alone (per module) on both configurations, ``--reruns`` rounds.

    Confirmed: it failed on scopeloop in every round while passing on stock.  A
    module or class fixture error (no test of its own to re-run) stays confirmed.
    """
    remaining = list(suspects)
    for n in range(args.reruns):
        by_module: dict[str, list[str]] = {}
        for test_id in remaining:
            if _rerunnable(test_id):
                by_module.setdefault(test_id[len(PACKAGE) + 1:].split(".")[0], []).append(test_id)
        outcome: dict[str, dict[str, Any]] = {c: {} for c in CONFIGS}
        for module, ids in by_module.items():
            for config in CONFIGS:
                results, _ = run_module(module, config, backend, work, args, budget,
                                        only=ids, tag=f".rerun{n}")
                outcome[config].update(results)
        remaining = [t for t in remaining if not _rerunnable(t)
                     or (outcome["stock"].get(t, {}).get("outcome") in PASSING
                         and outcome["scopeloop"].get(t, {}).get("outcome") not in PASSING)]
    return remaining, [t for t in suspects if t not in remaining]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("asyncio", "uvloop", "both"), default="both")
    parser.add_argument("--modules", nargs="*", metavar="test_x",
                        help="run only these modules of test.test_asyncio (default: all)")
    parser.add_argument("--test-timeout", type=float, default=120.0,
                        help="seconds one test may take before it is stopped (default 120)")
    parser.add_argument("--jobs", type=int, default=2,
                        help="test-module subprocesses run at once (default 2)")
    parser.add_argument("--timeout", type=float, default=1800.0,
                        help="seconds the whole run may take (default 1800)")
    parser.add_argument("--reruns", type=int, default=2,
                        help="re-runs that confirm a difference (default 2)")
    parser.add_argument("--uvloop-stock-policy", choices=("stdlib", "uvloop"), default="stdlib",
                        help="stock baseline of the uvloop backend: plain uvloop loops from "
                        "the stdlib policy (default) or uvloop.EventLoopPolicy")
    parser.add_argument("--work-dir", help="where logs and results go "
                        "(default integration/.cache/cpython_asyncio/pyX.Y)")
    # Child mode (internal).
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--config", choices=CONFIGS, help=argparse.SUPPRESS)
    parser.add_argument("--module", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--skip-ids", help=argparse.SUPPRESS)
    parser.add_argument("--only", action="append", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child_main(args)
    return parent_main(args)


if __name__ == "__main__":
    sys.exit(main())
