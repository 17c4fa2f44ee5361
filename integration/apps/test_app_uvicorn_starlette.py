"""A Starlette application served by uvicorn on scopeloop loops, three ways."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import starlette_app
import uvicorn

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
LOOP_CLASSES = {"uvloop": "UVLoopEventLoop", "asyncio": "AsyncioEventLoop"}


def listening_socket() -> socket.socket:
    """A loopback socket on an ephemeral port, already listening.

    Clients may connect as soon as it exists (the kernel queues them), so no test
    needs to wait for the server to announce that it is up.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    return sock


async def exercise(url: str, backend: str) -> None:
    """The requests every variant makes, and what they must answer."""
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        response = await client.get("/")
        assert (response.status_code, response.text) == (200, "Hello from Starlette")
        responses = await asyncio.gather(*(client.post("/echo", json=i) for i in range(20)))
        assert [r.json() for r in responses] == [{"echo": i} for i in range(20)]
        assert (await client.get("/numbers")).text == "0\n1\n2\n3\n4\n"
        assert (await client.get("/missing")).status_code == 404
        # The AnyIO bridge is on (scopeloop loops switch it on): the request task's
        # anyio.CancelScope is scopeloop's, and Starlette's sync endpoint runs in
        # scopeloop's worker pool, marked as an AnyIO worker (sniffio finds no library).
        assert (await client.get("/where")).json() == {
            "loop": LOOP_CLASSES[backend], "backend": backend, "task": "scopeloop.task.Task",
            "anyio scope": "scopeloop.anyio_compat"}
        assert (await client.get("/thread")).json() == {
            "thread": "scopeloop worker", "async library": None}


def test_uvicorn_server_on_a_scopeloop_loop(run_app: Callable[..., Any], backend: str) -> None:
    async def main() -> None:
        starlette_app.LIFESPAN_EVENTS.clear()
        sock = listening_socket()
        url = "http://127.0.0.1:%d" % sock.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(starlette_app.app, lifespan="on",
                                               log_level="warning"))
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        try:
            await exercise(url, backend)
        finally:
            server.should_exit = True
            await serving
        sock.close()
        assert starlette_app.LIFESPAN_EVENTS == ["startup", "shutdown"]

    run_app(main)


def run_server_process(args: list[str], sock: socket.socket, backend: str) -> tuple[str, str]:
    """Start a server process on ``sock``, exercise it, stop it with Ctrl+C; its output."""
    env = dict(os.environ, SCOPELOOP_BACKEND=backend, PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join([str(HERE), str(REPO), os.environ.get("PYTHONPATH", "")]))
    process = subprocess.Popen([sys.executable, *args], cwd=HERE, env=env, text=True,
                               pass_fds=[sock.fileno()],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    url = "http://127.0.0.1:%d" % sock.getsockname()[1]
    sock.close()  # the server process has its own copy
    try:
        asyncio.run(exercise(url, backend))
    finally:
        process.send_signal(signal.SIGINT)  # uvicorn's graceful shutdown
        out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert "Traceback" not in err and "was destroyed but it is pending" not in err, err
    assert "lifespan: startup" in out and "lifespan: shutdown" in err, (out, err)
    return out, err


def test_uvicorn_command_line_with_scopeloop_loop_factory(backend: str) -> None:
    """``uvicorn app --loop scopeloop:new_event_loop``: the backend comes from SCOPELOOP_BACKEND."""
    sock = listening_socket()
    run_server_process(["-m", "uvicorn", "starlette_app:app", "--fd", str(sock.fileno()),
                        "--loop", "scopeloop:new_event_loop", "--lifespan", "on",
                        "--log-level", "warning"], sock, backend)


def test_uvicorn_run_under_python_m_scopeloop(tmp_path: Path, backend: str) -> None:
    """An unchanged script calling uvicorn.run(loop="none") (asyncio.run's loop), under -m scopeloop."""
    script = tmp_path / "serve.py"
    script.write_text(textwrap.dedent("""\
        import sys
        import uvicorn

        if __name__ == "__main__":
            uvicorn.run("starlette_app:app", fd=int(sys.argv[1]), loop="none",
                        lifespan="on", log_level="warning")
        """))
    sock = listening_socket()
    run_server_process(["-m", "scopeloop", "--backend", backend, str(script),
                        str(sock.fileno())], sock, backend)
