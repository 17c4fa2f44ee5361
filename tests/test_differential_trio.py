"""Random structured-concurrency programs, run on Trio and on scopeloop (issue 14).

tests/differential/ holds the machinery: ``model`` generates programs over cancel
scopes (deadlines already passed or never, shields, ``cancel()`` and deadline and
shield changes from any task or from the driver), task groups (``start_soon``,
``start()`` with ``started(v)``), events and memory object streams; ``interp``
runs one on either library, stepping the tasks one at a time from a driver, and
records what each task observed; ``compare`` keeps what Trio guarantees (the same
under several scheduler seeds) and requires scopeloop to observe exactly that,
with ``cancelling()`` 0 at every exit and no stream item lost or duplicated.

The examples are derandomized (CI sees the same programs every run).  More:
``pytest tests/test_differential_trio.py --differential-examples 10000`` or
``tox -e differential``.
"""

from __future__ import annotations

import pytest

pytest.importorskip("trio")

from hypothesis import HealthCheck, event, given, settings  # noqa: E402

from differential.compare import check  # noqa: E402
from differential.model import Program, programs  # noqa: E402

# Sized for every test environment of the matrix (about 15 s for both backends on
# 3.11; Trio runs 4 seeds per program, shared by both backends).  `tox -e
# differential` runs 10,000 per backend; at that size it still finds the one known
# gap of issue 14 item 6 (a sibling resumed in the iteration its sibling failed in
# runs before the group is cancelled: see the strict xfail in test_like_trio.py).
DEFAULT_EXAMPLES = 1000


def test_scopeloop_observes_what_trio_guarantees(backend: str,
                                                 request: pytest.FixtureRequest) -> None:
    examples = request.config.getoption("--differential-examples") or DEFAULT_EXAMPLES

    @settings(max_examples=examples, derandomize=True, database=None, deadline=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(programs())
    def differential(prog: Program) -> None:
        varying = check(prog, backend)
        event(f"observations varying with Trio's schedule: {min(len(varying), 3)}"
              + ("+" if len(varying) >= 3 else ""))

    differential()
