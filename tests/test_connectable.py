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


# -- from_socket and connect_tcp(local_port=) -------------------------------------------

def test_from_socket_wraps_connected_and_listening_sockets(run: Any) -> None:
    async def main() -> list[Any]:
        raw_listener = socket.socket()
        raw_listener.bind(("127.0.0.1", 0))  # bound, not listening: from_socket listens
        listener = await scopeloop.TCPListener.from_socket(raw_listener.fileno())
        raw_listener.detach()  # the listener owns the descriptor now
        port = listener.extra(abc.SocketAttribute.local_port)
        client = socket.create_connection(("127.0.0.1", port))  # the backlog takes it
        async with listener, await scopeloop.SocketStream.from_socket(client) as stream:
            async with await listener.accept() as server:
                await stream.send(b"ping")
                got = [await server.receive()]
                await server.send(b"pong")
                got.append(await stream.receive())
                got.append(stream.extra(abc.SocketAttribute.remote_port) == port)
        return got

    assert run(main) == [b"ping", b"pong", True]


def test_from_socket_checks_its_argument(run: Any) -> None:
    async def main() -> None:
        with socket.socket() as unconnected:
            with pytest.raises(ValueError, match="must be connected"):
                await scopeloop.SocketStream.from_socket(unconnected)
            with pytest.raises(ValueError, match="must be bound"):
                await scopeloop.TCPListener.from_socket(unconnected.fileno())
            assert unconnected.fileno() >= 0  # a rejected descriptor stays open
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            with pytest.raises(ValueError, match="SOCK_STREAM"):
                await scopeloop.SocketStream.from_socket(udp)
        with pytest.raises(TypeError, match="socket or a file descriptor"):
            await scopeloop.SocketStream.from_socket("sock")  # type: ignore[arg-type]

    run(main)


def test_connect_tcp_binds_local_port(run: Any) -> None:
    async def main() -> bool:
        with socket.socket() as probe:  # a free port (closed before use, never connected)
            probe.bind(("127.0.0.1", 0))
            wanted = probe.getsockname()[1]
        async with await scopeloop.create_tcp_listener(local_host="127.0.0.1") as listener:
            port = listener.extra(abc.SocketAttribute.local_port)
            async with await scopeloop.connect_tcp("127.0.0.1", port, local_host="127.0.0.1",
                                                   local_port=wanted) as stream:
                return bool(stream.extra(abc.SocketAttribute.local_port) == wanted)

    assert run(main) is True
