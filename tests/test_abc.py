"""scopeloop.abc: stream ABCs, AsyncResource, aclose_forcefully, typed attributes."""

from __future__ import annotations

from typing import Any

import anyio
import anyio.abc
import pytest

import scopeloop
from scopeloop import abc
from scopeloop.typedattr import TypedAttributeProvider, TypedAttributeSet, typed_attribute


def test_memory_streams_are_object_streams():
    send, receive = scopeloop.create_memory_object_stream[int](1)
    with send, receive:
        assert isinstance(send, abc.ObjectSendStream)
        assert isinstance(send, abc.UnreliableObjectSendStream)
        assert isinstance(receive, abc.ObjectReceiveStream)
        assert isinstance(receive, abc.UnreliableObjectReceiveStream)
        for end in (send, receive):
            assert isinstance(end, abc.AsyncResource)
            assert isinstance(end, TypedAttributeProvider)
            assert end.extra_attributes == {}
            assert end.extra(scopeloop.SocketAttribute.family, "none") == "none"
            with pytest.raises(scopeloop.TypedAttributeLookupError, match="family"):
                end.extra(scopeloop.SocketAttribute.family)
        # The handles keep their slot layout: no per-instance dict.
        assert not hasattr(send, "__dict__") and not hasattr(receive, "__dict__")


def test_tcp_classes_implement_the_abcs(run):
    async def main() -> None:
        async with await scopeloop.create_tcp_listener(local_host="127.0.0.1") as listener:
            assert isinstance(listener, abc.Listener)
            assert isinstance(listener, abc.SocketListener)
            port = listener.extra(abc.SocketAttribute.local_port)
            async with await scopeloop.connect_tcp("127.0.0.1", port) as stream:
                assert isinstance(stream, abc.ByteStream)
                assert isinstance(stream, abc.SocketStream)
                assert stream.extra(abc.SocketAttribute.remote_port) == port

    run(main)
    assert abc.SocketStream is scopeloop.SocketStream
    assert abc.SocketListener is scopeloop.TCPListener
    assert abc.TaskGroup is scopeloop.TaskGroup


class _Echo(abc.ObjectStream[Any]):
    """A user-written stream: only the abstract methods, the rest comes from the ABCs."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self.closed = False

    async def send(self, item: Any) -> None:
        self.items.append(item)

    async def receive(self) -> Any:
        if not self.items:
            raise scopeloop.EndOfStream
        return self.items.pop(0)

    async def send_eof(self) -> None:
        pass

    async def aclose(self) -> None:
        self.closed = True


def test_user_streams_get_iteration_and_context_management(run):
    async def main() -> tuple[list[int], bool]:
        async with _Echo() as stream:
            for i in range(3):
                await stream.send(i)
            received = [item async for item in stream]
        return received, stream.closed

    assert run(main) == ([0, 1, 2], True)


def test_abstract_methods_must_be_implemented():
    class Half(abc.ObjectReceiveStream[int]):
        async def receive(self) -> int:
            return 0

    with pytest.raises(TypeError, match="aclose"):
        Half()  # type: ignore[abstract]


async def _aclose_forcefully_program(lib) -> list[str]:
    seen: list[str] = []

    class Slow(lib.abc.AsyncResource):
        async def aclose(self) -> None:
            try:
                await lib.sleep_forever()
            except lib.get_cancelled_exc_class():
                seen.append("close was cancelled")
                raise

    await lib.aclose_forcefully(Slow())
    seen.append("returned")
    return seen


def test_aclose_forcefully_matches_anyio_on_trio(run):
    expected = ["close was cancelled", "returned"]
    assert anyio.run(_aclose_forcefully_program, anyio, backend="trio") == expected
    assert run(_aclose_forcefully_program, scopeloop) == expected


async def _typed_attribute_program(lib) -> list[object]:
    class Colour(lib.TypedAttributeSet):
        red: int = lib.typed_attribute()
        blue: int = lib.typed_attribute()

    class Inner(lib.TypedAttributeProvider):
        @property
        def extra_attributes(self) -> Any:
            return {Colour.red: lambda: 1, Colour.blue: lambda: 2}

    class Outer(lib.TypedAttributeProvider):
        @property
        def extra_attributes(self) -> Any:
            return {**Inner().extra_attributes, Colour.blue: lambda: 20}

    seen: list[object] = [Outer().extra(Colour.red), Outer().extra(Colour.blue)]
    try:
        lib.TypedAttributeProvider().extra(Colour.red)
    except lib.TypedAttributeLookupError:
        seen.append("lookup error")
    seen.append(lib.TypedAttributeProvider().extra(Colour.red, None))
    try:
        type("Bad", (lib.TypedAttributeSet,), {"unannotated": lib.typed_attribute()})
    except TypeError:
        seen.append("TypeError")
    return seen


def test_typed_attributes_match_anyio(run):
    expected = [1, 20, "lookup error", None, "TypeError"]
    assert anyio.run(_typed_attribute_program, anyio, backend="trio") == expected
    assert run(_typed_attribute_program, scopeloop) == expected


def test_lookup_error_names_the_attribute():
    class Keys(TypedAttributeSet):
        thing: str = typed_attribute()

    with pytest.raises(scopeloop.TypedAttributeLookupError, match=r"Keys\.thing"):
        TypedAttributeProvider().extra(Keys.thing)
