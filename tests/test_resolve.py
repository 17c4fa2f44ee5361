"""getaddrinfo/getnameinfo (AnyIO's API); numeric addresses only (no DNS on CI)."""

from __future__ import annotations

import socket
from typing import Any

import anyio
import pytest

import scopeloop
from scopeloop.resolve import _encode_host


async def _program(lib: Any) -> list[Any]:
    v4 = await lib.getaddrinfo("127.0.0.1", 80, family=socket.AF_INET, type=socket.SOCK_STREAM)
    v6 = await lib.getaddrinfo("::1", 80, family=socket.AF_INET6, type=socket.SOCK_STREAM,
                               flags=socket.AI_NUMERICHOST)
    name = await lib.getnameinfo(("127.0.0.1", 80), socket.NI_NUMERICHOST | socket.NI_NUMERICSERV)
    return [[entry[4] for entry in v4], [entry[4] for entry in v6], name]


def test_matches_anyio_on_trio(run: Any) -> None:
    expected = [[("127.0.0.1", 80)], [("::1", 80)], ("127.0.0.1", "80")]
    assert anyio.run(_program, anyio, backend="trio") == expected
    assert run(_program, scopeloop) == expected


def test_idna_2008_encoding() -> None:
    assert _encode_host("example.com") == b"example.com"
    assert _encode_host("straße.de") == b"xn--strae-oqa.de"  # IDNA 2008, not 2003's "strasse"
    with pytest.raises(scopeloop.NoEventLoopError):
        scopeloop.getnameinfo(("127.0.0.1", 80)).send(None)
