"""scopeloop offers AnyIO 4.16's public names, except a written list of deliberate omissions.

Each omission says why.  A name AnyIO adds (or one scopeloop gains) makes this test
fail until it is implemented or listed here, so the list stays the truth.
"""

from __future__ import annotations

import importlib
from types import ModuleType

import pytest

anyio = pytest.importorskip("anyio")

BRIDGE = "comes from AnyIO itself through the AnyIO bridge (issue 16); not re-implemented"
BACKEND_API = ("AnyIO's backend plug-in interface; scopeloop is a loop, not an AnyIO "
               "backend (its backends are scopeloop.BACKENDS)")
NOT_YET = "not in issue 17; not implemented yet (use AnyIO's through the bridge meanwhile)"

OMISSIONS: dict[str, dict[str, str]] = {
    "anyio": {
        # files and temporary files
        **dict.fromkeys(["AsyncFile", "Path", "open_file", "wrap_file", "NamedTemporaryFile",
                         "SpooledTemporaryFile", "TemporaryDirectory", "TemporaryFile",
                         "gettempdir", "gettempdirb", "mkdtemp", "mkstemp"], BRIDGE),
        # processes and subinterpreters
        **dict.fromkeys(["open_process", "run_process", "BrokenWorkerProcess",
                         "BrokenWorkerInterpreter"], BRIDGE),
        # UNIX and UDP sockets
        **dict.fromkeys(["connect_unix", "create_unix_listener", "create_udp_socket",
                         "create_connected_udp_socket", "create_unix_datagram_socket",
                         "create_connected_unix_datagram_socket", "UNIXConnectable"], BRIDGE),
        # buffered and TLS stream wrappers (anyio.streams.buffered / anyio.streams.tls)
        **dict.fromkeys(["DelimiterNotFound", "IncompleteRead"], BRIDGE),
        # backends
        **dict.fromkeys(["get_all_backends", "get_available_backends"], BACKEND_API),
        # outside issue 17
        **dict.fromkeys(["open_signal_receiver", "ContextManagerMixin", "AsyncContextManagerMixin", "as_connectable"],
                        NOT_YET),
    },
    "anyio.abc": {
        **dict.fromkeys(["AsyncBackend", "TestRunner"], BACKEND_API),
        "Process": BRIDGE,
        **dict.fromkeys(["ConnectedUDPSocket", "ConnectedUNIXDatagramSocket", "UDPPacketType",
                         "UDPSocket", "UNIXDatagramPacketType", "UNIXDatagramSocket",
                         "UNIXSocketStream"], BRIDGE),
    },
    "anyio.lowlevel": {},
    "anyio.from_thread": {},
    "anyio.to_thread": {},
    "anyio.streams.memory": {},
}

# Where scopeloop keeps the names of each AnyIO module.
COUNTERPART = {
    "anyio": "scopeloop",
    "anyio.abc": "scopeloop.abc",
    "anyio.lowlevel": "scopeloop.lowlevel",
    "anyio.from_thread": "scopeloop.from_thread",
    "anyio.to_thread": "scopeloop.to_thread",
    "anyio.streams.memory": "scopeloop.streams",
}


def _public_names(module: ModuleType) -> set[str]:
    names = getattr(module, "__all__", None)
    if names is None:
        names = [name for name in dir(module) if not name.startswith("_")]
    return set(names)


@pytest.mark.parametrize("anyio_module", sorted(COUNTERPART))
def test_every_anyio_name_exists_or_is_a_listed_omission(anyio_module: str) -> None:
    theirs = importlib.import_module(anyio_module)
    ours = importlib.import_module(COUNTERPART[anyio_module])
    omitted = OMISSIONS[anyio_module]
    missing = sorted(name for name in _public_names(theirs)
                     if name not in omitted and not hasattr(ours, name))
    assert not missing, (f"{COUNTERPART[anyio_module]} lacks AnyIO's {missing}: implement "
                         f"them or list them in OMISSIONS with the reason")
    stale = sorted(name for name in omitted if hasattr(ours, name))
    assert not stale, f"listed as omitted but present in {COUNTERPART[anyio_module]}: {stale}"
    unknown = sorted(set(omitted) - _public_names(theirs))
    assert not unknown, f"listed as omitted but not AnyIO names: {unknown}"


@pytest.mark.parametrize("anyio_module", sorted(COUNTERPART))
def test_exported_names_are_in_all(anyio_module: str) -> None:
    """What scopeloop provides of AnyIO's names, its modules also export in __all__."""
    theirs = importlib.import_module(anyio_module)
    ours = importlib.import_module(COUNTERPART[anyio_module])
    shared = {name for name in _public_names(theirs) if hasattr(ours, name)}
    assert shared <= set(ours.__all__), sorted(shared - set(ours.__all__))


def test_every_omission_has_a_reason() -> None:
    for module, names in OMISSIONS.items():
        for name, reason in names.items():
            assert reason.strip(), f"{module}.{name} is omitted without a reason"


@pytest.mark.parametrize("name", ["connect_tcp", "create_tcp_listener"])
def test_tcp_functions_take_anyios_keyword_arguments(name: str) -> None:
    """connect_tcp(tls=, ssl_context=, tls_hostname=, ...) as in AnyIO, same defaults."""
    import inspect

    import scopeloop

    theirs = inspect.signature(getattr(anyio, name)).parameters
    ours = inspect.signature(getattr(scopeloop, name)).parameters
    assert list(ours) == list(theirs)
    assert {p: ours[p].default for p in ours} == {p: theirs[p].default for p in theirs}
