"""scopeloop: an asyncio event loop whose tasks know their cancel scopes.

Cancel scopes, deadlines, shields and task groups with Trio's semantics and AnyIO's
names, on a real asyncio loop (stdlib or uvloop) where ``Task.cancel()``,
``uncancel()`` and ``cancelling()`` keep their stock meaning.
"""

from __future__ import annotations

import sys

from . import from_thread, to_thread  # submodules, as in AnyIO: to_thread.run_sync(...)
from .diagnostics import LeftoverWarning, format_tree, print_tree
from .group import TASK_STATUS_IGNORED, TaskGroup, TaskStatus, create_task_group
from .loop import BACKENDS, EventLoopPolicy, default_backend, new_event_loop
from .lowlevel import (
    TaskInfo,
    checkpoint,
    current_time,
    get_cancelled_exc_class,
    get_current_task,
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
from .streams import (
    BrokenResourceError,
    ClosedResourceError,
    EndOfStream,
    MemoryObjectReceiveStream,
    MemoryObjectSendStream,
    MemoryObjectStreamStatistics,
    WouldBlock,
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
from .task import Task
from .tcp import (
    BusyResourceError,
    SocketAttribute,
    SocketStream,
    TCPListener,
    TypedAttributeLookupError,
    connect_tcp,
    create_tcp_listener,
)

__all__ = [
    "BACKENDS",
    "CancelScope",
    "EventLoopPolicy",
    "Runner",
    "TASK_STATUS_IGNORED",
    "Task",
    "TaskGroup",
    "TaskInfo",
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
    # TCP
    "BusyResourceError",
    "SocketAttribute",
    "SocketStream",
    "TCPListener",
    "TypedAttributeLookupError",
    "connect_tcp",
    "create_tcp_listener",
    # worker threads (submodules)
    "from_thread",
    "to_thread",
]

if sys.version_info >= (3, 12):
    from .task import eager_task_factory

    __all__ += ["eager_task_factory"]

__version__ = "0.1.0"
