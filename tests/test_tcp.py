"""TCP streams, listeners and Happy Eyeballs, on loopback only.

Multi-address hosts are simulated by replacing the running loop's ``getaddrinfo``
with one that returns a chosen list of loopback addresses: a listener that accepts,
a bound port with no listener (refuses at once), and a "black hole" (a listener
with a backlog of 0 whose one queue slot is taken, so further connects hang).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import os
import socket
import struct
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import scopeloop
from scopeloop import (
    BrokenResourceError,
    CancelScope,
    BusyResourceError,
    ClosedResourceError,
    EndOfStream,
    SocketAttribute,
    SocketStream,
    TCPListener,
    TypedAttributeLookupError,
    connect_tcp,
    create_tcp_listener,
)
from scopeloop.tcp import _interleave

Run = Callable[..., Any]


def _ipv6_loopback() -> str | None:
    """None if this machine can use ::1, else the reason it cannot."""
    if not socket.has_ipv6:
        return "Python was built without IPv6 support"
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError as exc:
        return f"cannot bind to ::1 ({exc})"
    return None


NO_IPV6 = _ipv6_loopback()
needs_ipv6 = pytest.mark.skipif(NO_IPV6 is not None,
                                reason=f"no IPv6 loopback on this machine: {NO_IPV6}")


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
def sockets() -> Iterator[list[socket.socket]]:
    """Plain sockets a test opens for refusing and black-hole addresses; closed after."""
    opened: list[socket.socket] = []
    yield opened
    for sock in opened:
        sock.close()


def refusing(opened: list[socket.socket], host: str = "127.0.0.1") -> tuple[Any, ...]:
    """An address that refuses connections: a bound port with nobody listening."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    opened.append(sock)
    sock.bind((host, 0))  # keeps the port ours, so nobody else starts listening on it
    return sock.getsockname()  # type: ignore[no-any-return]


def silent_listener(opened: list[socket.socket]) -> tuple[Any, ...]:
    """An address that accepts connections in the kernel but never in this process,
    so connecting to it changes this process's descriptors by the client side only."""
    listener = socket.socket()
    opened.append(listener)
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    return listener.getsockname()  # type: ignore[no-any-return]


def black_hole(opened: list[socket.socket]) -> tuple[Any, ...]:
    """An address whose connects hang: a full accept queue drops further SYNs."""
    listener = socket.socket()
    opened.append(listener)
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    filler = socket.socket()
    opened.append(filler)
    filler.connect(listener.getsockname())  # takes the one queue slot
    return listener.getsockname()  # type: ignore[no-any-return]


def resolve_to(addresses: list[tuple[Any, ...]]) -> None:
    """Make the running loop resolve every name to ``addresses``, in this order."""
    async def getaddrinfo(host: Any, port: Any, **kwargs: Any) -> list[tuple[Any, ...]]:
        return [(socket.AF_INET6 if len(addr) == 4 else socket.AF_INET, socket.SOCK_STREAM,
                 socket.IPPROTO_TCP, "", addr) for addr in addresses]
    asyncio.get_running_loop().getaddrinfo = getaddrinfo  # type: ignore[method-assign]


async def echo(stream: SocketStream) -> None:
    async for chunk in stream:
        await stream.send(chunk)


async def serving(tg: scopeloop.TaskGroup, handler: Callable[[SocketStream], Any] = echo,
                  host: str = "127.0.0.1") -> tuple[TCPListener, tuple[Any, ...]]:
    listener = await create_tcp_listener(local_host=host)
    tg.start_soon(listener.serve, handler)
    return listener, listener.sockets[0].getsockname()


def current_cancelling() -> int:
    task = asyncio.current_task()
    assert task is not None
    return task.cancelling()


# -- streams -----------------------------------------------------------------------------

def test_echo_and_attributes(run: Run) -> None:
    async def main() -> None:
        async with scopeloop.create_task_group() as tg:
            listener, (host, port) = await serving(tg)
            async with await connect_tcp(host, port) as stream:
                await stream.send(b"hello")
                assert await stream.receive() == b"hello"
                assert stream.extra(SocketAttribute.remote_address) == (host, port)
                assert stream.extra(SocketAttribute.remote_port) == port
                local_host, local_port = stream.extra(SocketAttribute.local_address)
                assert local_host == "127.0.0.1"
                assert stream.extra(SocketAttribute.local_port) == local_port != port
                assert stream.extra(SocketAttribute.family) == socket.AF_INET
                assert stream.extra(SocketAttribute.raw_socket).fileno() >= 0
                assert listener.extra(SocketAttribute.local_port) == port
                with pytest.raises(TypedAttributeLookupError, match="remote_port"):
                    listener.extra(SocketAttribute.remote_port)
                assert listener.extra(SocketAttribute.remote_port, None) is None
                await stream.send_eof()  # the echo handler ends, closing its side
                with pytest.raises(EndOfStream):
                    await stream.receive()
                with pytest.raises(EndOfStream):
                    await stream.receive()  # and again
                with pytest.raises(ClosedResourceError, match="send_eof"):
                    await stream.send(b"more")
            await listener.aclose()  # serve() returns
        assert current_cancelling() == 0

    run(main)


def test_literal_and_name(run: Run) -> None:
    """An IP literal needs no resolver; a name goes through loop.getaddrinfo."""
    async def main() -> None:
        async with scopeloop.create_task_group() as tg:
            listener, (host, port) = await serving(tg)
            for name in ("127.0.0.1", "localhost"):
                async with await connect_tcp(name, port) as stream:
                    await stream.send(name.encode())
                    assert await stream.receive() == name.encode()
            await listener.aclose()

    run(main)


@needs_ipv6
def test_ipv6_loopback(run: Run) -> None:
    async def main() -> None:
        async with scopeloop.create_task_group() as tg:
            listener, addr = await serving(tg, host="::1")
            async with await connect_tcp("::1", addr[1]) as stream:
                assert stream.extra(SocketAttribute.family) == socket.AF_INET6
                assert stream.extra(SocketAttribute.remote_address) == ("::1", addr[1])
                await stream.send(b"six")
                assert await stream.receive() == b"six"
            await listener.aclose()

    run(main)


def test_receive_max_bytes(run: Run) -> None:
    async def main() -> None:
        async with scopeloop.create_task_group() as tg:
            listener, (host, port) = await serving(tg)
            async with await connect_tcp(host, port) as stream:
                with pytest.raises(ValueError, match="max_bytes"):
                    await stream.receive(0)
                await stream.send(b"0123456789")
                received = b""
                while len(received) < 10:
                    piece = await stream.receive(3)
                    assert 1 <= len(piece) <= 3
                    received += piece
                assert received == b"0123456789"
            await listener.aclose()

    run(main)


def test_bulk_transfer_with_flow_control(run: Run) -> None:
    """4 MiB to a reader that waits: reading pauses at the high-water mark and resumes
    as the reader catches up; no byte is lost."""
    payload = os.urandom(4 * 1024 * 1024)

    async def main() -> None:
        accepted: list[SocketStream] = []
        arrived = asyncio.Event()

        async def keep(stream: SocketStream) -> None:
            accepted.append(stream)
            arrived.set()
            await scopeloop.sleep_forever()

        async with scopeloop.create_task_group() as tg:
            listener, (host, port) = await serving(tg, keep)
            async with await connect_tcp(host, port) as client:
                await arrived.wait()
                server = accepted[0]
                # Small kernel buffers, so the sender fills them long before 4 MiB.
                for stream, option in ((client, socket.SO_SNDBUF), (server, socket.SO_RCVBUF)):
                    stream.extra(SocketAttribute.raw_socket).setsockopt(
                        socket.SOL_SOCKET, option, 32 * 1024)

                async def send_all() -> None:
                    for i in range(0, len(payload), 100_000):
                        await client.send(payload[i:i + 100_000])
                    await client.send_eof()

                tg.start_soon(send_all)
                # Nobody reads, so the data piles up until the protocol pauses reading
                # (progress comes from I/O callbacks, not tasks: step the loop until then).
                with scopeloop.fail_after(30):
                    while not server._protocol.reading_paused:
                        await asyncio.sleep(0)
                assert server._protocol.buffered <= 128 * 1024 + 256 * 1024  # high water + one read
                digest = hashlib.sha256()
                total = 0
                async for chunk in server:
                    digest.update(chunk)
                    total += len(chunk)
                assert total == len(payload)
                assert digest.digest() == hashlib.sha256(payload).digest()
                await listener.aclose()
                tg.cancel_scope.cancel()

    run(main)


def test_closed_stream_raises_closed_resource_error(run: Run) -> None:
    async def main() -> None:
        async with scopeloop.create_task_group() as tg:
            listener, (host, port) = await serving(tg)
            stream = await connect_tcp(host, port)
            failures: list[BaseException] = []

            async def blocked_receive() -> None:
                try:
                    await stream.receive()
                except ClosedResourceError as exc:
                    failures.append(exc)

            tg.start_soon(blocked_receive)
            await scopeloop.wait_all_tasks_blocked()
            before = fd_count()
            await stream.aclose()
            assert fd_count() == before - 1  # the socket is closed when aclose() returns
            await scopeloop.wait_all_tasks_blocked()
            assert len(failures) == 1  # the waiting receiver was woken with the error
            for operation in (stream.receive(), stream.send(b"x"), stream.send_eof()):
                with pytest.raises(ClosedResourceError):
                    await operation
            await stream.aclose()  # closing twice is fine

            # In a cancelled scope too, the socket is closed when aclose() returns.
            stream = await connect_tcp(host, port)
            before = fd_count()
            with CancelScope() as scope:
                scope.cancel()
                await stream.aclose()
            assert fd_count() == before - 1
            await listener.aclose()

    run(main)


def test_peer_reset_raises_broken_resource_error(run: Run) -> None:
    async def main() -> None:
        async def reset(stream: SocketStream) -> None:
            # SO_LINGER with a zero timeout makes close() send a RST.
            stream.extra(SocketAttribute.raw_socket).setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            await stream.aclose()

        async with scopeloop.create_task_group() as tg:
            listener, (host, port) = await serving(tg, reset)
            async with await connect_tcp(host, port) as stream:
                with pytest.raises(BrokenResourceError) as info:
                    await stream.receive()
                assert isinstance(info.value.__cause__, ConnectionResetError)
                with pytest.raises(BrokenResourceError):
                    await stream.send(b"into the void")
            await listener.aclose()

    run(main)


def test_concurrent_receive_is_busy(run: Run) -> None:
    async def main() -> None:
        async with scopeloop.create_task_group() as tg:
            listener, (host, port) = await serving(tg)
            async with await connect_tcp(host, port) as stream:
                received = asyncio.Event()

                async def first() -> None:
                    assert await stream.receive() == b"x"
                    received.set()

                tg.start_soon(first)
                await scopeloop.wait_all_tasks_blocked()
                with pytest.raises(BusyResourceError):
                    await stream.receive()
                await stream.send(b"x")  # lets the first receive finish
                await received.wait()
            await listener.aclose()

    run(main)


def test_cancelled_receive_consumes_nothing(run: Run) -> None:
    async def main() -> None:
        async with scopeloop.create_task_group() as tg:
            listener, (host, port) = await serving(tg)
            async with await connect_tcp(host, port) as stream:
                with scopeloop.move_on_after(0.01) as scope:
                    await stream.receive()
                assert scope.cancelled_caught
                await stream.send(b"after")
                assert await stream.receive() == b"after"
                with scopeloop.CancelScope() as scope:
                    scope.cancel()
                    await stream.send(b"never")  # a cancel point: nothing is sent
                await stream.send(b"next")
                assert await stream.receive() == b"next"
            await listener.aclose()
        assert current_cancelling() == 0

    run(main)


# -- listeners ---------------------------------------------------------------------------

def test_accept_and_close_listener(run: Run) -> None:
    async def main() -> None:
        listener = await create_tcp_listener(local_host="127.0.0.1")
        port = listener.extra(SocketAttribute.local_port)
        async with scopeloop.create_task_group() as tg:
            # A cancelled accept loses no connection: the next accept gets it.
            with scopeloop.move_on_after(0.01):
                await listener.accept()
            client = await connect_tcp("127.0.0.1", port)
            server = await listener.accept()
            await client.send(b"ping")
            assert await server.receive() == b"ping"
            await client.aclose()
            await server.aclose()

            outcome: list[BaseException] = []

            async def accept_until_closed() -> None:
                try:
                    await listener.accept()
                except ClosedResourceError as exc:
                    outcome.append(exc)

            tg.start_soon(accept_until_closed)
            await scopeloop.wait_all_tasks_blocked()
            with pytest.raises(BusyResourceError):
                await listener.accept()
            await listener.aclose()
        assert len(outcome) == 1
        with pytest.raises(ClosedResourceError):
            await listener.accept()
        await listener.aclose()  # twice is fine

    run(main)


def test_serve_in_a_given_task_group(run: Run) -> None:
    async def main() -> None:
        seen: list[bytes] = []

        async def handler(stream: SocketStream) -> None:
            seen.append(await stream.receive())

        async with scopeloop.create_task_group() as tg:
            listener = await create_tcp_listener(local_host="127.0.0.1")
            tg.start_soon(functools.partial(listener.serve, handler, task_group=tg))
            port = listener.extra(SocketAttribute.local_port)
            for i in range(3):
                async with await connect_tcp("127.0.0.1", port) as stream:
                    await stream.send(b"%d" % i)
                    with pytest.raises(EndOfStream):
                        await stream.receive()  # the handler returned: its stream closed
            await listener.aclose()
        assert sorted(seen) == [b"0", b"1", b"2"]

    run(main)


def test_serve_then_accept_again(run: Run) -> None:
    """serve() leaves the listener usable; accept() is busy while it serves."""
    async def main() -> None:
        async with await create_tcp_listener(local_host="127.0.0.1") as listener:
            port = listener.extra(SocketAttribute.local_port)
            async with scopeloop.create_task_group() as tg:
                tg.start_soon(listener.serve, echo)
                await scopeloop.wait_all_tasks_blocked()
                with pytest.raises(BusyResourceError):
                    await listener.accept()
                with pytest.raises(BusyResourceError):
                    await listener.serve(echo)
                async with await connect_tcp("127.0.0.1", port) as stream:
                    await stream.send(b"served")
                    assert await stream.receive() == b"served"
                tg.cancel_scope.cancel()
            client = await connect_tcp("127.0.0.1", port)
            server = await listener.accept()
            await client.send(b"accepted")
            assert await server.receive() == b"accepted"
            await client.aclose()
            await server.aclose()

    run(main)


def test_listen_on_every_family(run: Run) -> None:
    async def main() -> None:
        async with await create_tcp_listener(local_host="localhost") as listener:
            families = {sock.family for sock in listener.sockets}
            ports = {sock.getsockname()[1] for sock in listener.sockets}
            assert socket.AF_INET in families
            assert len(ports) == 1  # one port for every address
        if NO_IPV6 is None:
            async with await create_tcp_listener() as listener:
                families = {sock.family for sock in listener.sockets}
                assert families == {socket.AF_INET, socket.AF_INET6}
                assert len({sock.getsockname()[1] for sock in listener.sockets}) == 1
                port = listener.extra(SocketAttribute.local_port)
                async with scopeloop.create_task_group() as tg:
                    tg.start_soon(listener.serve, echo)
                    for host in ("127.0.0.1", "::1"):
                        async with await connect_tcp(host, port) as stream:
                            await stream.send(host.encode())
                            assert await stream.receive() == host.encode()
                    tg.cancel_scope.cancel()

    run(main)


# -- Happy Eyeballs ------------------------------------------------------------------

def test_rfc8305_order() -> None:
    v6 = [(socket.AF_INET6, ("::1", 1, 0, 0)), (socket.AF_INET6, ("::2", 1, 0, 0))]
    v4 = [(socket.AF_INET, ("127.0.0.1", 1)), (socket.AF_INET, ("127.0.0.2", 1)),
          (socket.AF_INET, ("127.0.0.3", 1))]
    assert _interleave(v6 + v4) == [v6[0], v4[0], v6[1], v4[1], v4[2]]
    assert _interleave(v4 + v6) == [v4[0], v6[0], v4[1], v6[1], v4[2]]
    assert _interleave(v4) == v4


def test_refused_address_starts_the_next_at_once(run: Run, sockets: list[socket.socket]) -> None:
    async def main() -> None:
        async with scopeloop.create_task_group() as tg:
            listener, good = await serving(tg)
            resolve_to([refusing(sockets), good])
            # Waiting out the delay would hit the deadline: the refusal must start
            # the second attempt immediately.
            with scopeloop.fail_after(30):
                stream = await connect_tcp("two.example", good[1], happy_eyeballs_delay=3600)
            assert stream.extra(SocketAttribute.remote_address) == good
            await stream.aclose()
            await listener.aclose()
        assert current_cancelling() == 0

    run(main)


def test_black_hole_is_overtaken_and_closed(run: Run, sockets: list[socket.socket]) -> None:
    async def main() -> None:
        good = silent_listener(sockets)
        await (await connect_tcp(*good)).aclose()  # the loop's lazily made descriptors
        resolve_to([black_hole(sockets), good])
        before = fd_count()
        stream = await connect_tcp("two.example", good[1], happy_eyeballs_delay=0.01)
        assert stream.extra(SocketAttribute.remote_address) == good
        assert fd_count() == before + 1  # the black-hole attempt's socket is closed
        await stream.aclose()
        assert fd_count() == before
        assert current_cancelling() == 0

    run(main)


@pytest.mark.parametrize("ipv6", [False, pytest.param(True, marks=needs_ipv6)])
def test_all_refused_names_every_address(run: Run, sockets: list[socket.socket],
                                         ipv6: bool) -> None:
    async def main() -> None:
        first = refusing(sockets)
        second = refusing(sockets, "::1") if ipv6 else refusing(sockets)
        third = refusing(sockets)
        resolve_to([first, third, second] if ipv6 else [first, second, third])
        with pytest.raises(ConnectionRefusedError) as info:
            await connect_tcp("three.example", 80, happy_eyeballs_delay=3600)
        message = str(info.value)
        expected_order = [f"127.0.0.1:{first[1]}",
                          f"[::1]:{second[1]}" if ipv6 else f"127.0.0.1:{second[1]}",
                          f"127.0.0.1:{third[1]}"]
        positions = [message.index(address) for address in expected_order]
        assert positions == sorted(positions)  # tried in RFC 8305 order
        assert "three.example:80" in message
        assert len(info.value.__cause__.exceptions) == 3  # type: ignore[union-attr]
        assert current_cancelling() == 0

    run(main)


def test_single_address_failure_names_it(run: Run, sockets: list[socket.socket]) -> None:
    async def main() -> None:
        host, port = refusing(sockets)
        with pytest.raises(ConnectionRefusedError, match=f"127.0.0.1:{port}"):
            await connect_tcp(host, port)
        with pytest.raises(ValueError, match="negative"):
            await connect_tcp(host, port, happy_eyeballs_delay=-1)

    run(main)


def test_local_host(run: Run) -> None:
    async def main() -> None:
        async with scopeloop.create_task_group() as tg:
            listener, (host, port) = await serving(tg)
            async with await connect_tcp(host, port, local_host="127.0.0.1") as stream:
                assert stream.extra(SocketAttribute.local_address)[0] == "127.0.0.1"
            if NO_IPV6 is None:
                with pytest.raises(OSError, match="address family"):
                    await connect_tcp(host, port, local_host="::1")
            await listener.aclose()

    run(main)


def test_a_thousand_connects_leave_no_cancel_count(run: Run, sockets: list[socket.socket]) -> None:
    """The seeds' failure: each connect's internal group leaked a cancel count."""
    async def main() -> None:
        async with scopeloop.create_task_group() as tg:
            listener, good = await serving(tg)
            refused = refusing(sockets)
            for i in range(1000):
                # Alternate: the winner cancels the delay wait / the refusal starts it.
                resolve_to([good, refused] if i % 2 else [refused, good])
                stream = await connect_tcp("two.example", good[1])
                await stream.aclose()
                assert current_cancelling() == 0, f"cancel count leaked after {i + 1} connects"
            await listener.aclose()
        # asyncio.timeout still works in this task, which a leaked count would break.
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.001):
                await scopeloop.sleep_forever()

    run(main)


def test_cancelled_mid_race_leaves_no_socket(run: Run, sockets: list[socket.socket]) -> None:
    async def main() -> None:
        good = silent_listener(sockets)
        await (await connect_tcp(*good)).aclose()  # the loop's lazily made descriptors
        resolve_to([black_hole(sockets) for _ in range(3)])
        before = fd_count()
        async with scopeloop.create_task_group() as race:
            race.start_soon(functools.partial(
                connect_tcp, "three.example", 1, happy_eyeballs_delay=0))
            await scopeloop.wait_all_tasks_blocked()
            assert fd_count() == before + 3  # every attempt is in flight
            race.cancel_scope.cancel()
        assert fd_count() == before
        assert current_cancelling() == 0

    run(main)


def test_cancellation_at_every_step_leaves_nothing(run: Run, sockets: list[socket.socket]) -> None:
    """Cancel a refused/black-hole/good race after 0, 1, 2, ... loop iterations."""
    async def main() -> None:
        good = silent_listener(sockets)
        await (await connect_tcp(*good)).aclose()
        resolve_to([refusing(sockets), black_hole(sockets), good])
        before = fd_count()
        outcomes = set()
        for steps in range(40):
            got: list[SocketStream] = []

            async def connect() -> None:
                got.append(await connect_tcp("three.example", 1, happy_eyeballs_delay=0))

            async with scopeloop.create_task_group() as race:
                race.start_soon(connect)
                for _ in range(steps):
                    await asyncio.sleep(0)
                race.cancel_scope.cancel()
            assert fd_count() == before + len(got), f"leaked when cancelled after {steps} steps"
            outcomes.add(bool(got))
            for stream in got:
                await stream.aclose()
            assert current_cancelling() == 0
        assert outcomes == {False, True}  # both early and late cancellation were hit

    run(main)


# -- property: bytes arrive intact whatever the chunking and cancellations ----------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=20, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sizes=st.lists(st.integers(1, 300_000), min_size=1, max_size=6),
       reads=st.lists(st.tuples(st.integers(1, 100_000), st.none() | st.integers(0, 4)),
                      min_size=1, max_size=12))
def test_stream_is_exact_under_chunking_and_cancelled_receives(
        backend: str, sizes: list[int], reads: list[tuple[int, int | None]]) -> None:
    """The model is the byte string sent: the receiver gets exactly it, in order, with
    every chunk within its max_bytes, while some receives are cancelled after 0-4 loop
    steps (a receive that raised consumed nothing)."""
    payload = os.urandom(sum(sizes))

    async def main() -> None:
        accepted: list[SocketStream] = []
        arrived = asyncio.Event()

        async def keep(stream: SocketStream) -> None:
            accepted.append(stream)
            arrived.set()
            await scopeloop.sleep_forever()

        async with scopeloop.create_task_group() as tg:
            listener, (host, port) = await serving(tg, keep)
            client = await connect_tcp(host, port)
            await arrived.wait()
            server = accepted[0]

            async def send_all() -> None:
                offset = 0
                for size in sizes:
                    await client.send(payload[offset:offset + size])
                    offset += size
                await client.send_eof()

            tg.start_soon(send_all)
            received: list[bytes] = []
            ended = False

            async def receive(max_bytes: int) -> None:
                nonlocal ended
                try:
                    chunk = await server.receive(max_bytes)
                except EndOfStream:
                    ended = True
                else:
                    assert len(chunk) <= max_bytes
                    received.append(chunk)

            i = 0
            while not ended:
                max_bytes, cancel_after = reads[i % len(reads)]
                i += 1
                if cancel_after is None:
                    await receive(max_bytes)
                    continue
                async with scopeloop.create_task_group() as race:
                    scope = CancelScope()

                    async def cancel_later(steps: int = cancel_after) -> None:
                        for _ in range(steps):
                            await asyncio.sleep(0)
                        scope.cancel()

                    race.start_soon(cancel_later)
                    with scope:
                        await receive(max_bytes)
            assert b"".join(received) == payload
            assert current_cancelling() == 0
            await client.aclose()
            await server.aclose()
            await listener.aclose()
            tg.cancel_scope.cancel()

    scopeloop.run(main, backend=backend)
