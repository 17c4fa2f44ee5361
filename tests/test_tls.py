"""connect_tcp(tls=...): TLS client streams against a stock asyncio TLS server.

The peer is ``asyncio.start_server(ssl=...)`` on loopback with the certificate in
tests/tls (a private CA, valid until 2126, for ``localhost`` and 127.0.0.1), so what
is checked is interoperation with an independent TLS implementation of the loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hashlib
import os
import socket
import ssl
import threading
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import scopeloop
from scopeloop import (
    BrokenResourceError,
    CancelScope,
    EndOfStream,
    SocketAttribute,
    TLSAttribute,
    connect_tcp,
)

Run = Callable[..., Any]
CERTS = Path(__file__).parent / "tls"


def client_context() -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(CERTS / "ca.pem"))


def server_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(CERTS / "server.pem"))
    return context


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def serve(handler: Handler, *, tls: bool = True) -> tuple[asyncio.Server, int]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0,
                                        ssl=server_context() if tls else None)
    return server, server.sockets[0].getsockname()[1]


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        writer.close()


@contextlib.contextmanager
def tls_peer(serve_one: Callable[[ssl.SSLSocket], None], *,
             suppress_ragged_eofs: bool = True) -> Iterator[tuple[int, threading.Thread]]:
    """A blocking TLS server in a thread, for one connection: ``serve_one`` gets the
    wrapped socket.  Yields the port and the thread (joined, then the port closed, on
    leaving)."""
    listener = socket.create_server(("127.0.0.1", 0))

    def accept_one() -> None:
        conn, _ = listener.accept()
        with server_context().wrap_socket(conn, server_side=True,
                                          suppress_ragged_eofs=suppress_ragged_eofs) as tls:
            serve_one(tls)

    thread = threading.Thread(target=accept_one)
    thread.start()
    try:
        yield listener.getsockname()[1], thread
    finally:
        thread.join(timeout=40)
        listener.close()


async def receive_to_the_end(stream: scopeloop.SocketStream) -> bytes:
    """Everything ``stream`` receives; the end must be an EndOfStream."""
    data = b""
    with pytest.raises(EndOfStream):
        while True:
            data += await stream.receive()
    return data


def test_a_tls_round_trip_with_a_megabyte_each_way(run: Run) -> None:
    payload = os.urandom(1 << 20)

    async def main() -> tuple[str, str, int]:
        server, port = await serve(echo)
        async with server:
            stream = await connect_tcp("127.0.0.1", port, ssl_context=client_context(),
                                       tls_hostname="localhost")
            async with stream:
                received = bytearray()

                async def reader() -> None:
                    while len(received) < len(payload):
                        received.extend(await stream.receive())

                async with scopeloop.create_task_group() as tg:
                    tg.start_soon(reader)
                    await stream.send(payload)
                assert bytes(received) == payload
                version = stream.extra(TLSAttribute.tls_version)
                subject = dict(x[0] for x in stream.extra(TLSAttribute.peer_certificate)["subject"])
                assert stream.extra(TLSAttribute.server_side) is False
                assert stream.extra(TLSAttribute.standard_compatible) is True
                assert stream.extra(TLSAttribute.peer_certificate_binary)
                assert stream.extra(SocketAttribute.remote_port) == port
                digest = hashlib.sha256(bytes(received)).hexdigest()
                assert digest == hashlib.sha256(payload).hexdigest()
        task = asyncio.current_task()
        assert task is not None
        return version, subject["commonName"], task.cancelling()

    version, common_name, cancelling = run(main)
    assert version.startswith("TLSv1.")
    assert common_name == "localhost"
    assert cancelling == 0


@pytest.mark.parametrize("how", ["tls=True", "ssl_context", "tls_hostname"])
def test_each_tls_argument_turns_tls_on_and_verification_is_on_by_default(
        run: Run, how: str) -> None:
    """Like AnyIO: any of the three starts TLS; the default context checks the peer."""

    async def main() -> type[BaseException]:
        server, port = await serve(echo)
        async with server:
            kwargs: dict[str, Any] = {
                "tls=True": {"tls": True},
                # A context that trusts nothing: the handshake must fail on verification.
                "ssl_context": {"ssl_context": ssl.create_default_context(cadata=None)},
                "tls_hostname": {"tls_hostname": "localhost"},
            }[how]
            before = fd_count()
            with pytest.raises(ssl.SSLCertVerificationError) as caught:
                await connect_tcp("127.0.0.1", port, **kwargs)
            await asyncio.sleep(0)
            assert fd_count() == before, "the failed handshake left its socket open"
        return caught.type

    assert run(main) is ssl.SSLCertVerificationError


def test_a_certificate_for_another_host_is_refused(run: Run) -> None:
    async def main() -> str:
        server, port = await serve(echo)
        async with server:
            with pytest.raises(ssl.SSLCertVerificationError) as caught:
                await connect_tcp("127.0.0.1", port, ssl_context=client_context(),
                                  tls_hostname="example.org")
        return str(caught.value)

    assert "example.org" in run(main) or "match" in run(main)


def test_ssl_context_of_the_wrong_type_says_how_to_fix_it(run: Run) -> None:
    async def main() -> str:
        with pytest.raises(TypeError) as caught:
            await connect_tcp("127.0.0.1", 1, ssl_context=True)  # type: ignore[arg-type]
        return str(caught.value)

    assert "ssl.create_default_context()" in run(main)


@pytest.mark.parametrize("standard_compatible", [True, False])
def test_aclose_sends_close_notify_only_when_standard_compatible(
        run: Run, standard_compatible: bool) -> None:
    """The peer sees a clean TLS EOF after close_notify, a ragged EOF after abort.

    The peer is a blocking ``ssl.SSLSocket`` in a thread with ragged EOFs not
    suppressed, so that it tells the two apart on either backend (uvloop's own TLS
    server reports both as a clean EOF).
    """
    outcome: list[str] = []

    def peer(tls: ssl.SSLSocket) -> None:
        data = b""
        try:
            while chunk := tls.recv(65536):
                data += chunk
            outcome.append(f"clean EOF after {data!r}")
        except (ssl.SSLEOFError, ConnectionError) as exc:
            outcome.append(type(exc).__name__)

    async def main(port: int) -> None:
        stream = await connect_tcp("127.0.0.1", port, ssl_context=client_context(),
                                   tls_hostname="localhost",
                                   tls_standard_compatible=standard_compatible)
        await stream.send(b"bye")
        await stream.aclose()

    with tls_peer(peer, suppress_ragged_eofs=False) as (port, thread):
        run(main, port)
    assert not thread.is_alive(), "the peer never saw the connection end"
    if standard_compatible:
        assert outcome == ["clean EOF after b'bye'"]
    else:
        assert outcome in (["SSLEOFError"], ["ConnectionResetError"])


def test_receive_after_the_server_closes_is_end_of_stream(run: Run) -> None:
    async def main() -> bytes:
        async def greet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(b"hello")
            await writer.drain()
            writer.close()
            await writer.wait_closed()

        server, port = await serve(greet)
        async with server:
            async with await connect_tcp("127.0.0.1", port, ssl_context=client_context(),
                                         tls_hostname="localhost") as stream:
                data = await receive_to_the_end(stream)
                with pytest.raises(NotImplementedError, match="half-close"):
                    await stream.send_eof()
        return data

    assert run(main) == b"hello"


def test_a_handshake_cancelled_by_a_scope_closes_the_socket_and_leaves_no_count(
        run: Run) -> None:
    """The server accepts TCP but never speaks TLS: cancelling the wait is clean."""

    async def main() -> tuple[bool, bytes, int, int]:
        accepted = asyncio.Event()
        handled: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            accepted.set()
            # Never answers the ClientHello; the EOF shows the client closed its end.
            hello = await reader.read()
            writer.close()
            await writer.wait_closed()
            handled.set_result(hello)

        server, port = await serve(silent, tls=False)
        async with server:
            before = fd_count()
            with CancelScope() as scope:
                async with scopeloop.create_task_group() as tg:
                    async def cancel_once_accepted() -> None:
                        await accepted.wait()
                        scope.cancel()

                    tg.start_soon(cancel_once_accepted)
                    await connect_tcp("127.0.0.1", port, ssl_context=client_context(),
                                      tls_hostname="localhost")
            with scopeloop.fail_after(10):
                hello = await handled
            await asyncio.sleep(0)
            leaked = fd_count() - before
        task = asyncio.current_task()
        assert task is not None
        return scope.cancelled_caught, hello[:1], leaked, task.cancelling()

    # 0x16: the ClientHello record had gone out when the scope cancelled the wait.
    assert run(main) == (True, b"\x16", 0, 0)


def test_a_server_that_drops_the_connection_mid_handshake_is_an_error(run: Run) -> None:
    async def main() -> bool:
        async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.close()

        server, port = await serve(hang_up, tls=False)
        async with server:
            with pytest.raises((ConnectionError, ssl.SSLError, BrokenResourceError)):
                await connect_tcp("127.0.0.1", port, ssl_context=client_context(),
                                  tls_hostname="localhost")
        return True

    assert run(main)


def test_a_cancelled_close_aborts_a_tls_shutdown_the_peer_never_answers(run: Run) -> None:
    """The loop would wait 30 s for the peer's close_notify; a cancelled close does not.

    The peer reads our close_notify but never answers it, then waits for the TCP
    connection to end; the test waits (at most 10 s) for the peer to see that.
    """
    connection_ended: concurrent.futures.Future[str] = concurrent.futures.Future()

    def peer(tls: ssl.SSLSocket) -> None:
        try:
            while tls.recv(65536):
                pass
            with socket.socket(fileno=os.dup(tls.fileno())) as raw:
                raw.settimeout(30)
                ending = raw.recv(1)
            connection_ended.set_result(f"FIN {ending!r}")
        except OSError as exc:
            connection_ended.set_result(type(exc).__name__)

    async def main(port: int) -> tuple[str, bool, int]:
        stream = await connect_tcp("127.0.0.1", port, ssl_context=client_context(),
                                   tls_hostname="localhost")
        async with scopeloop.create_task_group() as tg:
            tg.start_soon(stream.aclose)
            await scopeloop.lowlevel.wait_all_tasks_blocked()  # aclose() awaits the reply
            tg.cancel_scope.cancel()
            with CancelScope(shield=True), scopeloop.fail_after(10):
                ending = await asyncio.wrap_future(connection_ended)
        task = asyncio.current_task()
        assert task is not None
        return ending, stream._protocol.lost, task.cancelling()

    with tls_peer(peer) as (port, _):
        ending, lost, cancelling = run(main, port)
    assert ending in ("FIN b''", "ConnectionResetError")
    assert (lost, cancelling) == (True, 0)


@pytest.mark.parametrize("peer_sends_close_notify", [True, False])
def test_the_end_of_a_tls_stream_is_end_of_stream_with_or_without_close_notify(
        run: Run, peer_sends_close_notify: bool) -> None:
    """A deliberate difference from AnyIO (README): a ragged EOF is EndOfStream too.

    The loop's TLS transport does not say whether close_notify came, so the stream
    cannot tell the two apart; what must hold is that the data arrives and the end is
    an EndOfStream rather than a hang or a BrokenResourceError on a clean close.
    """
    def peer(tls: ssl.SSLSocket) -> None:
        tls.sendall(b"last words")
        if peer_sends_close_notify:
            tls.unwrap().close()
        # else: leaving tls_peer closes it with just the TCP FIN, no close_notify

    async def main(port: int) -> bytes:
        async with await connect_tcp("127.0.0.1", port, ssl_context=client_context(),
                                     tls_hostname="localhost") as stream:
            return await receive_to_the_end(stream)

    with tls_peer(peer) as (port, _):
        assert run(main, port) == b"last words"
