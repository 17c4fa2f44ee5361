"""``python -m scopeloop``: existing programs run unchanged, on scopeloop loops."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# A program that reports, as JSON on stdout, what it sees of its environment and
# of the loops that the three stdlib entry points create.
REPORT = """\
import asyncio, json, sys

async def probe():
    loop = asyncio.get_running_loop()
    return {"loop": type(loop).__name__, "task": type(asyncio.current_task()).__module__,
            "backend": getattr(loop, "scopeloop_backend", None)}

def main():
    seen = {"run": asyncio.run(probe())}
    with asyncio.Runner() as runner:
        seen["Runner"] = runner.run(probe())
    loop = asyncio.new_event_loop()
    try:
        seen["new_event_loop"] = loop.run_until_complete(probe())
    finally:
        loop.close()
    import __main__
    seen.update(name=__name__, argv=sys.argv, path0=sys.path[0], file=__file__,
                main_is_module=__main__.__dict__ is globals())
    print(json.dumps(seen))

if __name__ == "__main__":
    main()
"""


def scopeloop_cmd(*args: str, cwd: Path, env: dict[str, str] | None = None,
                  ) -> subprocess.CompletedProcess[str]:
    """Run ``python -m scopeloop *args`` in ``cwd``, with this checkout importable."""
    full_env = dict(os.environ)
    full_env.pop("SCOPELOOP_BACKEND", None)
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "scopeloop", *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=60)


def write(path: Path, source: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source))
    return path


LOOP_CLASSES = {"uvloop": "UVLoopEventLoop", "asyncio": "AsyncioEventLoop"}


def test_script_runs_on_scopeloop_as_main(tmp_path: Path, backend: str) -> None:
    write(tmp_path / "app" / "report.py", REPORT)
    result = scopeloop_cmd("--backend", backend, "app/report.py", "-h", "--backend", "x",
                           cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    for entry in ("run", "Runner", "new_event_loop"):
        assert seen[entry] == {"loop": LOOP_CLASSES[backend], "task": "scopeloop.task",
                               "backend": backend}, entry
    assert seen["name"] == "__main__"
    # Options after the script belong to the script.
    assert seen["argv"] == ["app/report.py", "-h", "--backend", "x"]
    assert seen["path0"] == str(tmp_path / "app")
    assert seen["file"] == str(tmp_path / "app" / "report.py")
    assert seen["main_is_module"] is True


def test_default_backend_follows_environment(tmp_path: Path, backend: str) -> None:
    write(tmp_path / "report.py", REPORT)
    result = scopeloop_cmd("report.py", cwd=tmp_path, env={"SCOPELOOP_BACKEND": backend})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["run"]["backend"] == backend


def test_module_form(tmp_path: Path, backend: str) -> None:
    write(tmp_path / "pkg" / "__init__.py", "")
    write(tmp_path / "pkg" / "tool.py", REPORT)
    result = scopeloop_cmd("--backend", backend, "-m", "pkg.tool", "--flag", "value",
                           cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert seen["run"]["loop"] == LOOP_CLASSES[backend]
    assert seen["Runner"]["task"] == "scopeloop.task"
    assert seen["name"] == "__main__"
    # Like 'python -m pkg.tool': argv[0] is the module's file.
    assert seen["argv"] == [str(tmp_path / "pkg" / "tool.py"), "--flag", "value"]


def test_package_main_module(tmp_path: Path) -> None:
    write(tmp_path / "pkg" / "__init__.py", "")
    write(tmp_path / "pkg" / "__main__.py", REPORT)
    result = scopeloop_cmd("-m", "pkg", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["name"] == "__main__"


def test_directory_with_main(tmp_path: Path) -> None:
    write(tmp_path / "appdir" / "__main__.py", REPORT)
    result = scopeloop_cmd("appdir", "x", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert seen["Runner"]["task"] == "scopeloop.task"
    # As 'python appdir x'.
    assert (seen["name"], seen["argv"]) == ("__main__", ["appdir", "x"])
    assert seen["path0"] == str(tmp_path / "appdir")
    assert seen["file"] == str(tmp_path / "appdir" / "__main__.py")


def test_directory_without_main(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = scopeloop_cmd("empty", cwd=tmp_path)
    assert result.returncode == 1
    assert f"can't find '__main__' module in '{tmp_path / 'empty'}'" in result.stderr
    assert "Traceback" not in result.stderr


def test_scope_api_works_inside_asyncio_run(tmp_path: Path, backend: str) -> None:
    write(tmp_path / "scoped.py", """\
        import asyncio, scopeloop

        async def main():
            with scopeloop.move_on_after(0.01) as scope:
                await asyncio.sleep(30)
            assert scope.cancelled_caught
            assert asyncio.current_task().cancelling() == 0
            print("moved on")

        asyncio.run(main())
        """)
    result = scopeloop_cmd("--backend", backend, "scoped.py", cwd=tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == (0, "moved on\n", "")


@pytest.mark.parametrize(("code", "status", "stderr"), [
    ("pass", 0, ""),
    ("sys.exit(7)", 7, ""),
    ("sys.exit()", 0, ""),
    ("sys.exit('fatal: no config')", 1, "fatal: no config\n"),
    ("raise SystemExit(3)", 3, ""),
])
def test_exit_status(tmp_path: Path, code: str, status: int, stderr: str) -> None:
    write(tmp_path / "exits.py", f"""\
        import asyncio, sys

        async def main():
            {code}

        asyncio.run(main())
        """)
    result = scopeloop_cmd("exits.py", cwd=tmp_path)
    assert (result.returncode, result.stderr) == (status, stderr)


def test_traceback_is_the_programs_own(tmp_path: Path) -> None:
    script = write(tmp_path / "fails.py", """\
        import asyncio

        async def main():
            raise ValueError("boom")

        asyncio.run(main())
        """)
    result = scopeloop_cmd("fails.py", cwd=tmp_path)
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    # It starts at the script's module level, as when Python runs it directly ...
    assert lines[:2] == ["Traceback (most recent call last):",
                         f'  File "{script}", line 6, in <module>']
    assert f'  File "{script}", line 4, in main' in lines
    assert lines[-1] == "ValueError: boom"
    # ... and shows none of the runner's own frames.
    assert "__main__.py" not in result.stderr and "runpy" not in result.stderr


def test_programs_excepthook_is_used(tmp_path: Path) -> None:
    write(tmp_path / "hook.py", """\
        import sys, traceback

        def hook(exc_type, exc, tb):
            print("hooked", exc_type.__name__, traceback.extract_tb(tb)[0].name, file=sys.stderr)

        sys.excepthook = hook
        raise LookupError
        """)
    result = scopeloop_cmd("hook.py", cwd=tmp_path)
    assert (result.returncode, result.stderr) == (1, "hooked LookupError <module>\n")


def test_syntax_error_is_reported_like_python(tmp_path: Path) -> None:
    script = write(tmp_path / "bad.py", "x = (\n")
    result = scopeloop_cmd("bad.py", cwd=tmp_path)
    assert result.returncode == 1
    assert f'File "{script}", line 1' in result.stderr
    assert result.stderr.splitlines()[-1].startswith("SyntaxError:")
    assert "Traceback" not in result.stderr


@pytest.mark.skipif(sys.platform == "win32", reason="exit by signal is POSIX behaviour")
def test_unhandled_keyboard_interrupt_exits_like_python(tmp_path: Path) -> None:
    write(tmp_path / "interrupted.py", """\
        import asyncio

        async def main():
            raise KeyboardInterrupt

        asyncio.run(main())
        """)
    result = scopeloop_cmd("interrupted.py", cwd=tmp_path)
    # Python kills itself with SIGINT after an unhandled KeyboardInterrupt.
    assert result.returncode == -signal.SIGINT
    assert result.stderr.splitlines()[-1] == "KeyboardInterrupt"
    assert "runpy" not in result.stderr


def test_missing_script(tmp_path: Path) -> None:
    result = scopeloop_cmd("nowhere.py", "arg", cwd=tmp_path)
    assert result.returncode == 2
    assert "can't open file" in result.stderr
    assert str(tmp_path / "nowhere.py") in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_module(tmp_path: Path) -> None:
    result = scopeloop_cmd("-m", "no_such_module_here", cwd=tmp_path)
    assert result.returncode == 1
    assert "No module named 'no_such_module_here'" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("args", [(), ("--backend", "trio", "x.py"), ("--backend",),
                                  ("--verbose", "x.py"), ("-m",)])
def test_usage_errors(tmp_path: Path, args: tuple[str, ...]) -> None:
    result = scopeloop_cmd(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("usage: python -m scopeloop")
    assert "error:" in result.stderr


def test_help(tmp_path: Path) -> None:
    result = scopeloop_cmd("-h", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.startswith("usage: python -m scopeloop")
    for word in ("--backend", "-m module", "asyncio.run()", "uvloop"):
        assert word in result.stdout
