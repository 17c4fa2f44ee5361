"""scopeloop: an asyncio event loop whose tasks know their cancel scopes.

Cancel scopes, deadlines, shields and task groups with Trio's semantics and AnyIO's
names, on a real asyncio loop (stdlib or uvloop) where ``Task.cancel()``,
``uncancel()`` and ``cancelling()`` keep their stock meaning.
"""

from __future__ import annotations

import importlib
import sys

from typing import TYPE_CHECKING, Any

# What every program needs to run a loop with scopes and groups is imported here;
# everything else (streams and synchronisation primitives, the stream ABCs, TCP,
# threads, diagnostics, futures, ...) on first access (PEP 562, see __getattr__):
# `import scopeloop` then costs little more than `import asyncio, uvloop`, which
# every CLI, worker and test process pays.
from . import lowlevel
from .group import TASK_STATUS_IGNORED, TaskGroup, TaskStatus, create_task_group
from .handle import TaskCancelled, TaskFailed, TaskHandle, TaskNotFinished
from .loop import BACKENDS, EventLoopPolicy, default_backend, new_event_loop
from .lowlevel import (
    TaskInfo,
    checkpoint,
    current_time,
    get_cancelled_exc_class,
    get_current_task,
    get_running_tasks,
    sleep,
    sleep_forever,
    sleep_until,
    wait_all_tasks_blocked,
)
from .runner import Runner, run
from .scope import (
    CancelScope,
    current_effective_deadline,
    fail_after,
    fail_at,
    move_on_after,
    move_on_at,
)
from .task import Task
from .token import NoEventLoopError, RunFinishedError

# The module each lazily imported name comes from; a submodule's own name maps to
# the submodule.  Keep in step with the TYPE_CHECKING imports below (mypy reads
# those) and with __all__; tests/test_import.py checks all three agree.
_LAZY_FROM = {
    ".abc": ("aclose_forcefully",),
    ".concurrency": ("amap", "as_completed", "gather"),
    ".connectable": ("ConnectionFailed", "TCPConnectable"),
    ".diagnostics": ("LeftoverWarning", "format_tree", "print_tree"),
    ".fdwait": ("notify_closing", "wait_readable", "wait_socket_readable",
                "wait_socket_writable", "wait_writable"),
    ".future": ("Future", "FutureAlreadyFinished", "FutureCancelled", "FutureFailed",
                "FutureNotFinished"),
    ".guard": ("BusyResourceError", "ResourceGuard"),
    ".resolve": ("getaddrinfo", "getnameinfo"),
    "._resource_errors": ("BrokenResourceError", "ClosedResourceError", "EndOfStream",
                          "WouldBlock"),
    ".streams": ("MemoryObjectReceiveStream", "MemoryObjectSendStream",
                 "MemoryObjectStreamStatistics", "create_memory_object_stream"),
    ".sync": ("CapacityLimiter", "CapacityLimiterStatistics", "Condition",
              "ConditionStatistics", "Event", "EventStatistics", "Lock", "LockStatistics",
              "Semaphore", "SemaphoreStatistics"),
    ".tcp": ("SocketAttribute", "SocketStream", "TCPListener", "TLSAttribute", "connect_tcp",
             "create_tcp_listener"),
    ".typedattr": ("TypedAttributeLookupError", "TypedAttributeProvider",
                   "TypedAttributeSet", "typed_attribute"),
}
_LAZY_SUBMODULES = ("abc", "from_thread", "to_thread")

_LAZY: dict[str, tuple[str, str | None]] = {
    name: (module, name) for module, names in _LAZY_FROM.items() for name in names}
_LAZY.update((name, ("." + name, None)) for name in _LAZY_SUBMODULES)

if TYPE_CHECKING:
    from . import abc, from_thread, to_thread
    from .abc import aclose_forcefully
    from .concurrency import amap, as_completed, gather
    from .connectable import ConnectionFailed, TCPConnectable
    from .diagnostics import LeftoverWarning, format_tree, print_tree
    from .fdwait import (
        notify_closing,
        wait_readable,
        wait_socket_readable,
        wait_socket_writable,
        wait_writable,
    )
    from .future import (
        Future,
        FutureAlreadyFinished,
        FutureCancelled,
        FutureFailed,
        FutureNotFinished,
    )
    from .guard import BusyResourceError, ResourceGuard
    from .resolve import getaddrinfo, getnameinfo
    from ._resource_errors import (
        BrokenResourceError,
        ClosedResourceError,
        EndOfStream,
        WouldBlock,
    )
    from .streams import (
        MemoryObjectReceiveStream,
        MemoryObjectSendStream,
        MemoryObjectStreamStatistics,
        create_memory_object_stream,
    )
    from .sync import (
        CapacityLimiter,
        CapacityLimiterStatistics,
        Condition,
        ConditionStatistics,
        Event,
        EventStatistics,
        Lock,
        LockStatistics,
        Semaphore,
        SemaphoreStatistics,
    )
    from .tcp import (
        SocketAttribute,
        SocketStream,
        TCPListener,
        TLSAttribute,
        connect_tcp,
        create_tcp_listener,
    )
    from .typedattr import (
        TypedAttributeLookupError,
        TypedAttributeProvider,
        TypedAttributeSet,
        typed_attribute,
    )


def __getattr__(name: str) -> Any:
    try:
        module_name, attribute = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'scopeloop' has no attribute {name!r}") from None
    module = importlib.import_module(module_name, __name__)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value  # later lookups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "BACKENDS",
    "CancelScope",
    "EventLoopPolicy",
    "Runner",
    "TASK_STATUS_IGNORED",
    "Task",
    "TaskCancelled",
    "TaskFailed",
    "TaskGroup",
    "TaskHandle",
    "TaskInfo",
    "TaskNotFinished",
    "TaskStatus",
    "checkpoint",
    "create_task_group",
    "current_effective_deadline",
    "current_time",
    "default_backend",
    "fail_after",
    "fail_at",
    "get_cancelled_exc_class",
    "get_current_task",
    "get_running_tasks",
    "move_on_after",
    "move_on_at",
    "new_event_loop",
    "run",
    "sleep",
    "sleep_forever",
    "sleep_until",
    "wait_all_tasks_blocked",
    # diagnostics
    "LeftoverWarning",
    "format_tree",
    "print_tree",
    # memory object streams
    "BrokenResourceError",
    "ClosedResourceError",
    "EndOfStream",
    "MemoryObjectReceiveStream",
    "MemoryObjectSendStream",
    "MemoryObjectStreamStatistics",
    "WouldBlock",
    "create_memory_object_stream",
    # synchronisation primitives
    "CapacityLimiter",
    "CapacityLimiterStatistics",
    "Condition",
    "ConditionStatistics",
    "Event",
    "EventStatistics",
    "Lock",
    "LockStatistics",
    "Semaphore",
    "SemaphoreStatistics",
    "ResourceGuard",
    "BusyResourceError",
    # futures and concurrency helpers
    "Future",
    "FutureAlreadyFinished",
    "FutureCancelled",
    "FutureFailed",
    "FutureNotFinished",
    "amap",
    "as_completed",
    "gather",
    # resources, stream ABCs and typed attributes
    "aclose_forcefully",
    "TypedAttributeLookupError",
    "TypedAttributeProvider",
    "TypedAttributeSet",
    "typed_attribute",
    # TCP
    "SocketAttribute",
    "SocketStream",
    "TCPListener",
    "TLSAttribute",
    "connect_tcp",
    "create_tcp_listener",
    "ConnectionFailed",
    "TCPConnectable",
    "getaddrinfo",
    "getnameinfo",
    # waiting for file descriptors
    "notify_closing",
    "wait_readable",
    "wait_socket_readable",
    "wait_socket_writable",
    "wait_writable",
    # threads and event loop tokens
    "NoEventLoopError",
    "RunFinishedError",
    # submodules
    "abc",
    "from_thread",
    "lowlevel",
    "to_thread",
]

if sys.version_info >= (3, 12):
    from .task import eager_task_factory

    __all__ += ["eager_task_factory"]

__version__ = "0.1.0"
