"""Diagnostics: what cancelled work left behind, and a live task/scope tree.

Debug mode
----------
``scopeloop.run(main, debug=True)``, ``new_event_loop(debug=True)`` or the
environment variable ``SCOPELOOP_DEBUG=1`` create a *debug loop*: a subclass of the
backend's scopeloop loop, defined here, that overrides ``call_soon``,
``call_later``, ``call_at``, ``create_task`` and ``close``.  The ordinary loop
classes are left untouched, so with debug off none of this code runs.

The debug loop records every task, timer (``call_later``/``call_at``) and callback
(``call_soon``) that the program's own code creates while a task runs: the
creating task, that task's innermost cancel scope, and the creation site (the
calling line, and up to four of its callers within the task).  It emits one
``LeftoverWarning`` (a ``ResourceWarning``, attributed to the creation site) for
each of these:

* a timer or callback that is still pending when the task that created it ends,
  cancelled or not (a callback scheduled in the task's last step is reported when
  it runs, right after the task ended);
* a task it created outside any task group that is still running when it ends;
* any of them still pending when the loop closes, if its task never ended.

"The program's own code" is code outside the standard library (asyncio included),
installed packages (site-packages) and scopeloop: libraries manage what they
schedule for themselves (``asyncio.sleep`` and ``asyncio.timeout`` timers, a
connection pool's timers, AnyIO's internal callbacks), and what asyncio's C code
and uvloop schedule (task steps, future callbacks) is recognised and skipped too.
Tasks created through ``asyncio.create_task``, ``ensure_future``, ``gather`` or
``shield`` count as created by their caller; children of scopeloop task groups
and of ``asyncio.TaskGroup`` belong to their group, and callbacks made with
``TaskGroup.call_soon``/``call_later`` are cancelled by theirs.  Python hides
``ResourceWarning`` by default; a debug loop shows ``LeftoverWarning`` unless the
program configured warnings itself (``-W``, ``PYTHONWARNINGS``, or a filter).

Debug mode costs: asyncio's own debug mode (which it turns on too) makes most
operations 10-50 times slower; the recording adds a few microseconds per
recorded operation.  ``integration/bench/bench_debug_overhead.py`` measures it.

The tree
--------
``format_tree()`` describes the running loop's tasks; ``print_tree()`` writes that
to stderr.  A debug loop also prints it on SIGUSR1 (Unix, main thread; the
environment variable ``SCOPELOOP_TREE_SIGNAL`` names another signal, or ``off``),
and ``print_tree_on_signal()`` does the same for any loop.  Example::

    scopeloop task tree: 2 tasks (uvloop backend, debug)
    task 'Task-1' waiting at scopeloop/group.py:171 in TaskGroup.__aexit__(), called from app.py:20 in main()
    `- scope 7f486473eb50: cancelled (KeyboardInterrupt)
       `- scope 7f486473ee10: task group with 1 task, cancelled
          `- task 'cleanup' waiting at asyncio/tasks.py:649 in sleep(), called from app.py:15 in cleanup(); created at app.py:22 in main()
             `- scope 7f486476bd50: shield

(after Ctrl+C: the root scope is cancelled, and the program waits for a shielded
cleanup that sleeps).

Format, line by line:

* The header: ``scopeloop task tree: N tasks (<backend> backend[, debug])``.
* Below it, one node per line; a child is indented under its parent with "+- "
  (more siblings follow) or "`- " (the last sibling), and "|  " or three spaces
  continue the parent's column.  Roots start at column 0.
* ``task '<name>' <state> at <file>:<line> in <function>()``: *state* is
  ``running`` (the task calling format_tree), ``waiting`` (blocked on a future)
  or ``ready`` (scheduled to run); the location is the innermost suspended frame
  of its coroutine chain, followed by ``, called from <file>:<line> in <f>()``,
  the innermost frame outside asyncio and scopeloop, when they differ.  Then,
  after ``; ``, as they apply: ``cancelled by scope <id> (<reason>)`` (it is
  effectively cancelled), ``cancel() requested <n>x`` (native requests, as
  ``cancelling()`` counts them), ``created at <file>:<line>`` (debug mode) and
  ``outside any task group`` (debug mode: a task spawned with plain
  ``create_task``, listed under the task that created it).
* ``scope <id>[: attributes]``: a cancel scope the task above has entered, the
  outermost first, each nested in the previous one.  Attributes, in this order:
  ``task group with <n> tasks`` (tasks spawned into it are its children in the
  tree), ``cancelled`` or ``cancelled (<reason>)``, ``shield``, and
  ``deadline in <s>s`` or ``deadline <s>s ago``.  ``<id>`` is the hex id that
  the CancelledError a scope raises carries in its message.  A pending
  ``start()`` shows as ``scope <id>: start() waiting for task_status.started()``
  with the task it started below it.
* ``pending timer <callback> due in <s>s, created at <file>:<line>`` and
  ``pending callback <callback>, created at ...`` (debug mode): what the task
  above has scheduled and not yet seen run or cancelled.

Paths are relative to the current directory or to the standard library when
under them.  Tasks are sorted by name (numbers in names compare as numbers).
"""

from ._debugloop import LeftoverWarning, _DebugLoopMixin, debug_loop_class
from ._tree import format_tree, print_tree, print_tree_on_signal

__all__ = ("LeftoverWarning", "format_tree", "print_tree", "print_tree_on_signal",
           "debug_loop_class")
