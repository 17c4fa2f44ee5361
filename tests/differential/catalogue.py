"""Catalogue the distinct differences the generator finds (a tool, not a test).

    cd tests && PYTHONPATH=.. python -m differential.catalogue 10000 asyncio

Runs N derandomized programs; every difference gets a *signature*: the first
record (in time) where the two sides differ, with numbers (ids, items) blanked.  For each signature it keeps the smallest program seen,
then asks hypothesis for a smaller one with the same signature, and prints them.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any

from hypothesis import HealthCheck, find, given, settings
from hypothesis.errors import NoSuchExample

from .compare import Difference, check
from .model import Program, format_program, programs


def _shape(value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return "#"
    if isinstance(value, tuple):
        if len(value) == 2 and value[0] == "ValueError":
            return "ValueError"
        return tuple(_shape(v) for v in value)
    return repr(value)


def signature(diff: Difference) -> Any:
    """The first difference in time: the first differing record of the actor whose
    divergence scopeloop reached earliest (later ones are usually its consequences)."""
    first: tuple[float, Any] | None = None
    for key, (theirs, ours) in diff.diffs.items():
        if not key.startswith("actor"):
            continue
        i = 0
        while i < min(len(theirs), len(ours)) and theirs[i] == ours[i]:
            i += 1
        stamps = diff.stamps[key]
        # A record scopeloop lacks has no time: that actor stopped early or never
        # ran, a consequence of a difference elsewhere if there is one.
        when = stamps[i] if i < len(stamps) else math.inf
        sig = (_shape(theirs[i]) if i < len(theirs) else "END",
               _shape(ours[i]) if i < len(ours) else "END")
        if first is None or when < first[0] or (
                when == first[0] == math.inf and repr(sig) < repr(first[1])):
            first = (when, sig)
    if first is not None:
        return first[1]
    return tuple(sorted((k, _shape(v)) for k, v in diff.diffs.items()))


def sigs_of(prog: Program, backend: str) -> set[Any]:
    try:
        check(prog, backend)
    except Difference as diff:
        return {signature(diff)}
    return set()


def main(examples: int, backend: str) -> None:
    best: dict[Any, tuple[int, Program]] = {}
    count = [0, 0]
    start = time.perf_counter()

    @settings(max_examples=examples, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(programs())
    def explore(prog: Program) -> None:
        count[0] += 1
        sigs = sigs_of(prog, backend)
        if sigs:
            count[1] += 1
        size = len(format_program(prog))
        for sig in sigs:
            if sig not in best or size < best[sig][0]:
                best[sig] = (size, prog)

    explore()
    elapsed = time.perf_counter() - start
    print(f"{count[0]} programs, {count[1]} with a difference, "
          f"{len(best)} signatures, {elapsed:.1f}s\n")
    for n, (sig, (size, prog)) in enumerate(sorted(best.items(), key=lambda kv: repr(kv[0]))):
        try:
            prog = find(programs(), lambda p, sig=sig: sig in sigs_of(p, backend),  # type: ignore[misc]
                        settings=settings(max_examples=1000, database=None, deadline=None,
                                          suppress_health_check=list(HealthCheck)))
        except NoSuchExample:
            pass
        print(f"=== signature {n}: {sig}")
        try:
            check(prog, backend)
        except Difference as diff:
            print(diff)
        print()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000,
         sys.argv[2] if len(sys.argv) > 2 else "asyncio")
