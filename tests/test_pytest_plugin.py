"""scopeloop's pytest plugin, exercised in inner pytest runs (pytester)."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
from typing import Any

import pytest

import scopeloop
import scopeloop.pytest_plugin

pytest_plugins = ["pytester"]

# The inner test suite's conftest: a fixture recording, per call, which loop and
# which kind of task the calling code runs on.
CONFTEST = """\
import asyncio, json
import pytest
import scopeloop

@pytest.fixture
def record(request):
    def record(label):
        loop = asyncio.get_running_loop()
        seen = {"label": label, "loop": type(loop).__name__,
                "backend": getattr(loop, "scopeloop_backend", None),
                "scopeloop_task": isinstance(asyncio.current_task(), scopeloop.Task)}
        with open(request.config.rootpath / "seen.jsonl", "a") as file:
            file.write(json.dumps(seen) + "\\n")
    return record
"""

ASYNCIO_TESTS = """\
import asyncio
import pytest
import pytest_asyncio
import scopeloop

@pytest_asyncio.fixture
async def fixture_value(record):
    record("fixture")
    yield 42

@pytest.mark.asyncio
async def test_records(record, fixture_value):
    assert fixture_value == 42
    record("test")
"""

INI = """\
[pytest]
asyncio_default_fixture_loop_scope = function
{extra}
"""

LOOP_CLASSES = {"uvloop": "UVLoopEventLoop", "asyncio": "AsyncioEventLoop"}


def make_suite(pytester: pytest.Pytester, tests: str = ASYNCIO_TESTS, ini: str = "") -> None:
    pytester.makeini(INI.format(extra=ini))
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_inner=tests)


def run_inner(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """Run the inner suite in this process.

    Hypothesis's plugin is left out: its end-of-session report imports modules that
    pytester unloads after every inner run, which would cost a second per run.
    """
    return pytester.runpytest("-p", "no:hypothesispytest", *args)


def seen(pytester: pytest.Pytester) -> list[dict[str, Any]]:
    path = pytester.path / "seen.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def expect_scopeloop(records: list[dict[str, Any]], backend: str) -> None:
    assert records, "the inner tests recorded nothing"
    for entry in records:
        assert entry["loop"] == LOOP_CLASSES[backend], entry
        assert entry["backend"] == backend, entry
        assert entry["scopeloop_task"] is True, entry


def test_registered_as_pytest11_entry_point() -> None:
    points = importlib.metadata.entry_points(group="pytest11")
    assert any(point.value == "scopeloop.pytest_plugin" for point in points)


def test_inactive_unless_asked_for(pytester: pytest.Pytester) -> None:
    make_suite(pytester)
    result = run_inner(pytester)
    result.assert_outcomes(passed=1)
    records = seen(pytester)
    assert [entry["label"] for entry in records] == ["fixture", "test"]
    for entry in records:
        assert entry["backend"] is None and entry["scopeloop_task"] is False, entry
    assert "scopeloop:" not in result.stdout.str()


def test_command_line_flag_uses_default_backend(pytester: pytest.Pytester) -> None:
    make_suite(pytester)
    result = run_inner(pytester, "--scopeloop")
    result.assert_outcomes(passed=1)
    expect_scopeloop(seen(pytester), scopeloop.default_backend())
    result.stdout.fnmatch_lines([f"scopeloop: * ({scopeloop.default_backend()})"])


@pytest.mark.parametrize(("ini", "args"), [
    ("scopeloop = true\nscopeloop_backend = {backend}", ()),
    ("scopeloop_backend = {backend}", ("--scopeloop",)),
    ("", ("--scopeloop-backend={backend}",)),
    ("scopeloop = true\nscopeloop_backend = nonsense", ("--scopeloop-backend", "{backend}")),
], ids=["ini", "ini backend + flag", "backend option", "option beats ini"])
def test_enabled_runs_tests_on_the_chosen_backend(pytester: pytest.Pytester, backend: str,
                                                  ini: str, args: tuple[str, ...]) -> None:
    make_suite(pytester, ini=ini.format(backend=backend))
    result = run_inner(pytester, *(arg.format(backend=backend) for arg in args))
    result.assert_outcomes(passed=1)
    expect_scopeloop(seen(pytester), backend)


def test_ini_backend_alone_does_not_enable(pytester: pytest.Pytester) -> None:
    make_suite(pytester, ini="scopeloop_backend = asyncio")
    run_inner(pytester).assert_outcomes(passed=1)
    assert {entry["backend"] for entry in seen(pytester)} == {None}


def test_no_scopeloop_overrides_ini(pytester: pytest.Pytester) -> None:
    make_suite(pytester, ini="scopeloop = true")
    run_inner(pytester, "--no-scopeloop").assert_outcomes(passed=1)
    assert {entry["backend"] for entry in seen(pytester)} == {None}


def test_scope_api_works_in_tests(pytester: pytest.Pytester, backend: str) -> None:
    make_suite(pytester, tests="""\
        import asyncio
        import pytest
        import scopeloop

        @pytest.mark.asyncio
        async def test_scopes():
            with scopeloop.move_on_after(0.01) as scope:
                await asyncio.sleep(30)
            assert scope.cancelled_caught
            async with scopeloop.create_task_group() as tg:
                tg.start_soon(scopeloop.sleep, 0)
            assert asyncio.current_task().cancelling() == 0
        """)
    run_inner(pytester, f"--scopeloop-backend={backend}").assert_outcomes(passed=1)


def test_module_scoped_loop(pytester: pytest.Pytester, backend: str) -> None:
    """Tests sharing one loop (loop_scope="module") share one scopeloop loop."""
    make_suite(pytester, tests="""\
        import asyncio
        import pytest

        pytestmark = pytest.mark.asyncio(loop_scope="module")
        loops = []

        async def test_first(record):
            record("first")
            loops.append(asyncio.get_running_loop())

        async def test_second(record):
            record("second")
            assert loops == [asyncio.get_running_loop()]
        """)
    run_inner(pytester, f"--scopeloop-backend={backend}").assert_outcomes(passed=2)
    records = seen(pytester)
    assert [entry["label"] for entry in records] == ["first", "second"]
    expect_scopeloop(records, backend)


def test_several_backends_parametrize_each_test(pytester: pytest.Pytester) -> None:
    backends = [name for name in scopeloop.BACKENDS if name != "uvloop"
                or importlib.util.find_spec("uvloop") is not None]
    make_suite(pytester, tests=ASYNCIO_TESTS + """
@pytest.mark.asyncio(loop_factories=["scopeloop-asyncio"])
async def test_only_on_stdlib_backend(record):
    record("selected")
""")
    result = run_inner(pytester, "-v", "--scopeloop-backend=all")
    result.assert_outcomes(passed=len(backends) + 1)
    for name in backends:
        result.stdout.fnmatch_lines([f"*test_records?scopeloop-{name}? PASSED*"])
    records = seen(pytester)
    assert sorted(entry["backend"] for entry in records if entry["label"] == "test") == sorted(backends)
    assert [entry["backend"] for entry in records if entry["label"] == "selected"] == ["asyncio"]
    expect_scopeloop([entry for entry in records if entry["backend"] == "asyncio"], "asyncio")


def test_bad_backend_is_a_usage_error(pytester: pytest.Pytester) -> None:
    make_suite(pytester)
    result = run_inner(pytester, "--scopeloop-backend=trio")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*scopeloop: unknown scopeloop backend 'trio'*"])
    assert seen(pytester) == []


def test_empty_backend_list_means_default(pytester: pytest.Pytester) -> None:
    make_suite(pytester)
    run_inner(pytester, "--scopeloop-backend=").assert_outcomes(passed=1)
    expect_scopeloop(seen(pytester), scopeloop.default_backend())


def test_needs_pytest_asyncio(pytester: pytest.Pytester) -> None:
    make_suite(pytester)
    result = run_inner(pytester, "-p", "no:asyncio", "--scopeloop")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*needs pytest-asyncio 1.4 or later*"])


def test_loop_factories_helper_for_conftest_hooks(pytester: pytest.Pytester) -> None:
    """A project's own hook takes precedence and can include scopeloop's factories."""
    make_suite(pytester)
    pytester.makeconftest(CONFTEST + """
import scopeloop.pytest_plugin

def pytest_asyncio_loop_factories(config, item):
    return scopeloop.pytest_plugin.loop_factories(["asyncio"])
""")
    run_inner(pytester).assert_outcomes(passed=1)
    expect_scopeloop(seen(pytester), "asyncio")


anyio_missing = importlib.util.find_spec("anyio") is None


@pytest.mark.skipif(anyio_missing, reason="AnyIO is not installed, so its pytest plugin "
                    "cannot be checked (pip install anyio)")
@pytest.mark.parametrize("args", [(), ("--scopeloop-backend=asyncio",)],
                         ids=["scopeloop plugin off", "scopeloop plugin on"])
def test_beside_anyio_plugin(pytester: pytest.Pytester, args: tuple[str, ...]) -> None:
    make_suite(pytester, tests=ASYNCIO_TESTS + """
import anyio

@pytest.fixture
def anyio_backend():
    return ("asyncio", {"loop_factory": scopeloop.new_event_loop})

@pytest.mark.anyio
async def test_anyio(record):
    record("anyio")
    with anyio.move_on_after(0.01) as scope:
        await anyio.sleep(30)
    assert scope.cancelled_caught
    async with anyio.create_task_group() as tg:
        tg.start_soon(anyio.sleep, 0)
""")
    run_inner(pytester, *args).assert_outcomes(passed=2)
    records = {entry["label"]: entry for entry in seen(pytester)}
    # AnyIO's tests run on the loop its fixture names, whether or not ours is on ...
    assert records["anyio"]["scopeloop_task"] is True
    assert records["anyio"]["backend"] == scopeloop.default_backend()
    # ... and pytest-asyncio's follow this plugin's setting.
    assert records["test"]["scopeloop_task"] is bool(args)


def test_plugin_module_docstring_documents_the_options() -> None:
    doc = scopeloop.pytest_plugin.__doc__ or ""
    for word in ("--scopeloop", "--scopeloop-backend", "scopeloop = true", "scopeloop_backend",
                 "pytest_asyncio_loop_factories", "anyio_backend", "loop_factory"):
        assert word in doc, word


@pytest.fixture(autouse=True)
def _no_backend_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # Inner runs read SCOPELOOP_BACKEND for the default backend; keep it predictable.
    monkeypatch.delenv("SCOPELOOP_BACKEND", raising=False)


# -- async generator fixtures: setup and teardown in one task ----------------------

SERVER_FIXTURES = """\
import asyncio
import contextvars
import pytest
import pytest_asyncio
import scopeloop

served = []
tasks = {}
var = contextvars.ContextVar("var", default="unset")

async def serve(task_status=scopeloop.TASK_STATUS_IGNORED):
    task_status.started()
    try:
        await scopeloop.sleep_forever()
    finally:
        served.append("server stopped")

@pytest_asyncio.fixture
async def server():
    tasks["setup"] = asyncio.current_task()
    var.set("set by fixture")
    async with scopeloop.create_task_group() as tg:
        await tg.start(serve)
        with scopeloop.move_on_after(30) as scope:
            yield "running"
        tasks["teardown"] = asyncio.current_task()
        tg.cancel_scope.cancel()
    assert not scope.cancelled_caught
    served.append("group exited")

@pytest.mark.asyncio
async def test_uses_server(server):
    assert server == "running"
    assert var.get() == "set by fixture"
    assert asyncio.current_task() is not tasks["setup"]
    await scopeloop.sleep(0)

def test_after():
    assert served == ["server stopped", "group exited"]
    assert tasks["setup"] is tasks["teardown"]
"""


def test_task_group_in_async_generator_fixture(pytester: pytest.Pytester, backend: str) -> None:
    make_suite(pytester, tests=SERVER_FIXTURES)
    run_inner(pytester, f"--scopeloop-backend={backend}").assert_outcomes(passed=2)


CRASHING_SERVER = """\
import pytest
import pytest_asyncio
import scopeloop

async def crash():
    await scopeloop.sleep(0)
    raise ValueError("server crashed")

@pytest_asyncio.fixture
async def server():
    async with scopeloop.create_task_group() as tg:
        tg.start_soon(crash)
        yield
        raise AssertionError("not reached: the yield raises the group's cancellation")

@pytest.mark.asyncio
async def test_uses_server(server):
    for _ in range(3):
        await scopeloop.sleep(0)
"""


def test_fixture_group_cancelled_at_the_yield(pytester: pytest.Pytester, backend: str) -> None:
    # The group is cancelled while the test runs: as in one task, the CancelledError
    # comes out of the fixture's yield and the group raises the child's error, which
    # the fixture's teardown reports.
    make_suite(pytester, tests=CRASHING_SERVER)
    result = run_inner(pytester, f"--scopeloop-backend={backend}")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*ERROR at teardown of test_uses_server*"])
    result.stdout.fnmatch_lines(["*ValueError: server crashed*"])
    result.stdout.no_fnmatch_line("*not reached*")


def test_scope_api_without_the_plugin_says_to_enable_it(pytester: pytest.Pytester) -> None:
    make_suite(pytester, tests="""\
        import pytest
        import scopeloop

        @pytest.mark.asyncio
        async def test_scope():
            with scopeloop.move_on_after(1):
                pass
        """)
    result = run_inner(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*not a scopeloop loop*run pytest with --scopeloop*"])
