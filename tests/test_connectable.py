"""TCPConnectable and ConnectionFailed (AnyIO's API)."""

from __future__ import annotations

import socket
from typing import Any

import pytest

import scopeloop
from scopeloop import abc


def test_connects_and_reports_failures(run: Any) -> None:
    async def main() -> None:
        async with await scopeloop.create_tcp_listener(local_host="127.0.0.1") as listener:
            port = listener.extra(abc.SocketAttribute.local_port)
            endpoint = scopeloop.TCPConnectable("127.0.0.1", port)
            assert isinstance(endpoint, abc.ByteStreamConnectable)
            async with await endpoint.connect() as stream:
                assert stream.extra(abc.SocketAttribute.remote_port) == port
        # A bound socket that does not listen refuses connections (and keeps the port).
        with socket.socket() as closed:
            closed.bind(("127.0.0.1", 0))
            refused = scopeloop.TCPConnectable("127.0.0.1", closed.getsockname()[1])
            with pytest.raises(scopeloop.ConnectionFailed, match="error connecting to") as info:
                await refused.connect()
            assert isinstance(info.value, OSError)
            assert isinstance(info.value.__cause__, OSError)

    run(main)


def test_port_is_checked() -> None:
    with pytest.raises(ValueError, match="out of range"):
        scopeloop.TCPConnectable("localhost", 0)
    with pytest.raises(TypeError, match="port must be an int"):
        scopeloop.TCPConnectable("localhost", "80")  # type: ignore[arg-type]
