"""Compare scopeloop's observations of a program with what Trio guarantees.

Trio shuffles every batch of runnable tasks.  A program is run on Trio under
``SEEDS`` scheduler seeds; an observation (one task's records, the escaped
exception, the driver's log) that is the same under all of them is what Trio
guarantees for that program, and scopeloop must match it exactly.  One that varies
depends on the schedule and is not compared.  When scopeloop differs from a stable
observation, Trio is run under ``CONFIRM_SEEDS`` more seeds first: a difference is
reported only if the observation is still the same under every one of them.
Scopeloop's own invariants (``cancelling()`` is 0 at every exit: Trio's side always
records 0 there; no stream item lost) are part of the observations.
"""

from __future__ import annotations

from typing import Any

from .apis import ScopeloopAPI, TrioAPI
from .interp import run_program
from .model import Program, format_program

SEEDS = 4
CONFIRM_SEEDS = 32

# Trio's observations per program (keyed by its repr): both backends' runs of the
# same derandomized examples share them.
_trio_cache: dict[str, list[dict[str, Any]]] = {}


def trio_runs(prog: Program, count: int) -> list[dict[str, Any]]:
    key = repr(prog)
    runs = _trio_cache.setdefault(key, [])
    while len(runs) < count:
        runs.append(run_program(TrioAPI(seed=len(runs)), prog))
    if len(_trio_cache) > 2000:
        _trio_cache.clear()
        _trio_cache[key] = runs
    return runs


def stable(runs: list[dict[str, Any]]) -> tuple[dict[str, Any], set[str]]:
    """The observations identical in every run, and the keys of those that are not."""
    first = runs[0]
    same = {k: v for k, v in first.items()
            if not k.startswith("_") and all(r[k] == v for r in runs[1:])}
    return same, {k for k in first if not k.startswith("_")} - set(same)


class Difference(AssertionError):
    """scopeloop observed something Trio never does for this program."""

    def __init__(self, message: str, diffs: dict[str, tuple[Any, Any]],
                 stamps: dict[str, list[int]]) -> None:
        super().__init__(message)
        self.diffs = diffs  # key -> (Trio's observation, scopeloop's)
        self.stamps = stamps  # actor key -> when scopeloop made each record


def check(prog: Program, backend: str) -> set[str]:
    """Run ``prog`` on scopeloop and on Trio; raise Difference if they disagree.

    Returns the keys that were not compared (they vary with Trio's schedule).
    """
    runs = trio_runs(prog, SEEDS)
    for run in runs:
        assert not run["violations"], (  # the oracle itself: a bug in the harness
            f"Trio lost stream items: {run['violations']}\n{format_program(prog)}")
    ours = run_program(ScopeloopAPI(backend), prog)
    expected, varying = stable(runs)
    diffs = [k for k in expected if ours[k] != expected[k]]
    if diffs:
        runs = trio_runs(prog, SEEDS + CONFIRM_SEEDS)
        expected, varying = stable(runs)
        diffs = [k for k in expected if ours[k] != expected[k]]
    if diffs:
        lines = [f"scopeloop ({backend}) differs from Trio in {len(diffs)} observation(s)",
                 format_program(prog)]
        for k in diffs:
            lines += [f"  {k}:", f"    trio:      {expected[k]}", f"    scopeloop: {ours[k]}"]
        if varying:
            lines.append(f"  (not compared, vary with Trio's schedule: {sorted(varying)})")
        raise Difference("\n".join(lines), {k: (expected[k], ours[k]) for k in diffs},
                         ours["_stamps"])
    return varying
