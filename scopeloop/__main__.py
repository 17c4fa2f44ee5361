"""``python -m scopeloop``: run an existing asyncio program unchanged on scopeloop.

::

    python -m scopeloop [--backend uvloop|asyncio] script.py [args ...]
    python -m scopeloop [--backend uvloop|asyncio] -m package.module [args ...]

scopeloop's event loop policy is installed before the program starts, so
``asyncio.run()``, ``asyncio.Runner()`` and ``asyncio.new_event_loop()`` inside it
create scopeloop loops.  The program runs as if Python ran it directly: its
``__name__`` is ``"__main__"``, ``sys.argv`` holds the script and its arguments,
``sys.path[0]`` is the script's directory, ``SystemExit`` codes are the process's
exit status, and an unhandled exception prints the usual traceback (starting at
the program's own code) and exits with status 1 (a KeyboardInterrupt exits as
Python does after Ctrl+C).
"""

from __future__ import annotations

import asyncio
import builtins
import functools
import importlib.machinery
import importlib.util
import io
import os
import runpy
import sys
import types
import warnings
from types import TracebackType

from . import _cpython
from .loop import BACKENDS, EventLoopPolicy, _resolve_backend, default_backend, new_event_loop

PROG = "python -m scopeloop"

USAGE = f"""\
usage: {PROG} [-h] [--backend {{{','.join(BACKENDS)}}}] script.py [args ...]
       {PROG} [-h] [--backend {{{','.join(BACKENDS)}}}] -m module [args ...]
"""


def _help() -> str:
    return USAGE + f"""
Run an existing asyncio program unchanged, with scopeloop as the event loop behind
asyncio.run(), asyncio.Runner() and asyncio.new_event_loop().

positional arguments:
  script.py          the program to run (a file, or a directory or zip file with a
                     __main__.py), exactly as 'python script.py' would
  args               passed to the program in sys.argv[1:]

options:
  -h, --help         show this help message and exit
  --backend NAME     the loop scopeloop runs on: 'uvloop' or 'asyncio' (the stdlib
                     selector loop); default: $SCOPELOOP_BACKEND, else uvloop where
                     installed (here: {default_backend()})
  -m module          run a library module (or a package's __main__) as a script,
                     like 'python -m module'

Everything after the script or module name goes to the program, unchanged.
"""


class _UsageError(Exception):
    """A bad command line: reported with the usage text, exit status 2."""


def _parse(argv: list[str]) -> tuple[str | None, str | None, str | None, list[str]]:
    """Split argv into (backend, script, module, program args); None script+module = help."""
    backend: str | None = None
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("-h", "--help"):
            return backend, None, None, []
        if arg == "--backend" or arg.startswith("--backend="):
            if arg == "--backend":
                if i + 1 >= len(argv):
                    raise _UsageError("argument --backend: expected a backend name")
                i += 1
                value = argv[i]
            else:
                value = arg.partition("=")[2]
            if value not in BACKENDS:
                raise _UsageError(f"argument --backend: invalid choice {value!r} "
                                  f"(choose from {', '.join(map(repr, BACKENDS))})")
            backend = value
        elif arg == "-m" or (arg.startswith("-m") and not arg.startswith("--")):
            # Like Python, '-mpkg.mod' is '-m pkg.mod'.
            module = arg[2:]
            if not module:
                if i + 1 >= len(argv):
                    raise _UsageError("argument -m: expected a module name")
                i += 1
                module = argv[i]
            return backend, None, module, argv[i + 1:]
        elif arg == "--":
            if i + 1 >= len(argv):
                raise _UsageError("a script or -m module is required")
            return backend, argv[i + 1], None, argv[i + 2:]
        elif arg.startswith("-") and arg != "-":
            raise _UsageError(f"unrecognized option {arg!r} (options go before the script)")
        else:
            return backend, arg, None, argv[i + 1:]
        i += 1
    raise _UsageError("a script or -m module is required")


def _install_policy(backend: str | None) -> None:
    if _cpython.POLICY_BASE is None or _cpython.set_event_loop_policy is None:
        # No policy API (3.16): asyncio.run(), Runner() and new_event_loop() all
        # create their loop through asyncio.events.new_event_loop; make that ours.
        factory = functools.partial(new_event_loop, _resolve_backend(backend))
        asyncio.events.new_event_loop = asyncio.new_event_loop = factory
        return
    # Python 3.14 deprecates the policy API; the user asked for this runner, not for
    # the policy, so the warning would only be noise here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        _cpython.set_event_loop_policy(EventLoopPolicy(backend))


def _is_ours(tb: TracebackType) -> bool:
    """True for a traceback entry of this runner or of runpy (not of the program)."""
    module_globals = tb.tb_frame.f_globals
    return module_globals is globals() or module_globals is vars(runpy)


def _program_traceback(tb: TracebackType | None) -> TracebackType | None:
    """Drop the runner's own frames from the head of ``tb``, as if Python ran the program."""
    while tb is not None and _is_ours(tb):
        tb = tb.tb_next
    return tb


class _ProgramExceptHook:
    """Prints the program's unhandled exception without the runner's frames.

    The exception is re-raised to the interpreter's top level, so the interpreter
    itself decides the exit status (1, or death by SIGINT for KeyboardInterrupt) and
    runs its normal shutdown; this hook only trims what it prints, and delegates to
    whatever ``sys.excepthook`` the program left installed.
    """

    def __init__(self, exc: BaseException) -> None:
        self._exc = exc
        self._hook = sys.excepthook

    def __call__(self, exc_type: type[BaseException], exc: BaseException,
                 tb: TracebackType | None) -> None:
        if exc is self._exc:
            tb = _program_traceback(tb)
            exc.__traceback__ = tb
        self._hook(exc_type, exc, tb)


def _run_script(path: str, args: list[str]) -> None:
    if not os.path.exists(path):
        # The same words and status as 'python missing.py'.
        print(f"{PROG}: can't open file {os.path.abspath(path)!r}: "
              f"[Errno 2] No such file or directory", file=sys.stderr)
        raise SystemExit(2)
    sys.argv[:] = [path, *args]
    if os.path.isdir(path) or _is_zip(path):
        _run_main_module_of(path)
    elif path.endswith((".pyc", ".pyo")):
        sys.path[0] = os.path.dirname(os.path.abspath(path))
        runpy.run_path(path, run_name="__main__")
    else:
        _run_source_file(path)


def _run_source_file(path: str) -> None:
    # As Python runs a script: absolute __file__ and code file name, a real loader,
    # and a __main__ module that stays in sys.modules until exit.
    filename = os.path.abspath(path)
    sys.path[0] = os.path.dirname(filename)
    with io.open_code(filename) as file:
        source = file.read()
    code = compile(source, filename, "exec", dont_inherit=True)
    main_module = types.ModuleType("__main__")
    main_module.__dict__.update(
        __file__=filename, __cached__=None, __spec__=None, __package__=None,
        __loader__=importlib.machinery.SourceFileLoader("__main__", filename),
        __builtins__=builtins)
    _exec_as_main(code, main_module)


def _run_main_module_of(path: str) -> None:
    """Run the __main__ module of a directory or zip file, as 'python path' does."""
    sys.path[0] = os.path.abspath(path)
    # The runner itself is __main__ right now; hide it so the lookup finds the program's.
    runner_module = sys.modules.pop("__main__")
    try:
        spec = importlib.util.find_spec("__main__")
    finally:
        sys.modules["__main__"] = runner_module
    get_code = getattr(spec and spec.loader, "get_code", None)
    code = get_code("__main__") if get_code is not None else None
    if spec is None or code is None:
        print(f"{PROG}: can't find '__main__' module in {sys.path[0]!r}", file=sys.stderr)
        raise SystemExit(1)
    _exec_as_main(code, importlib.util.module_from_spec(spec))


def _exec_as_main(code: types.CodeType, main_module: types.ModuleType) -> None:
    sys.modules["__main__"] = main_module
    exec(code, main_module.__dict__)


def _is_zip(path: str) -> bool:
    import zipfile
    return zipfile.is_zipfile(path)


def _run_module(module: str, args: list[str]) -> None:
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError) as exc:
        spec = None
        reason = str(exc)
    else:
        reason = f"No module named {module!r}"
    if spec is None:
        print(f"{PROG}: {reason}", file=sys.stderr)
        raise SystemExit(1)
    # run_module sets sys.argv[0] to the module's file, as 'python -m' does;
    # sys.path[0] is already the current directory because we run under -m too.
    sys.argv[:] = [module, *args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


def main(argv: list[str] | None = None) -> None:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``)."""
    try:
        backend, script, module, args = _parse(sys.argv[1:] if argv is None else argv)
        if script is None and module is None:
            print(_help(), end="")
            return
        _install_policy(backend)
    except (_UsageError, ValueError) as exc:
        print(USAGE, end="", file=sys.stderr)
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    try:
        if module is not None:
            _run_module(module, args)
        else:
            assert script is not None
            _run_script(script, args)
    except SystemExit:
        raise
    except BaseException as exc:
        sys.excepthook = _ProgramExceptHook(exc)
        raise


if __name__ == "__main__":
    main()
