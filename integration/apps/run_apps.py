"""Run the real-application checks (aiohttp, httpx, Starlette on uvicorn, websockets).

Usage, from the repository root, in an environment with the ``integration`` extra
(``pip install -e '.[integration,test]'``)::

    python integration/apps/run_apps.py --backend both      # or uvloop, or asyncio
    python integration/apps/run_apps.py --backend asyncio -- -k websockets -x

Arguments after ``--`` go to pytest.  The exit status is pytest's.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
NEEDED = ("aiohttp", "anyio", "httpx", "starlette", "uvicorn", "websockets", "scopeloop")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("both", "uvloop", "asyncio"), default="both",
                        help="scopeloop backend(s) to run the applications on (default: both)")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    args = parser.parse_args(argv)

    missing = [name for name in NEEDED if importlib.util.find_spec(name) is None]
    if missing:
        print(f"run_apps: missing {', '.join(missing)}; install the integration extra: "
              f"pip install -e '{REPO}[integration,test]'", file=sys.stderr)
        return 2

    env = dict(os.environ)
    if args.backend == "both":
        env.pop("SCOPELOOP_BACKEND", None)  # the tests are parametrized over both
    else:
        env["SCOPELOOP_BACKEND"] = args.backend
    command = [sys.executable, "-m", "pytest", str(HERE.relative_to(REPO)), "-p", "no:cacheprovider",
               *args.pytest_args]
    print("run_apps:", " ".join(command), f"(backend: {args.backend})", flush=True)
    return subprocess.call(command, cwd=REPO, env=env)


if __name__ == "__main__":
    sys.exit(main())
