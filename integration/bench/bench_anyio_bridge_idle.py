"""The AnyIO bridge's idle cost: ``with anyio.CancelScope(): pass`` on a STOCK asyncio
loop, with the bridge installed against without it (interleaved repetitions).

Usage: ``PYTHONPATH=. python integration/bench/bench_anyio_bridge_idle.py``.
Prints the median ratio (bridged / stock); issue 16 asks for at most 1.05.
"""

from __future__ import annotations

import asyncio
import statistics
import timeit

import anyio

from scopeloop import anyio_compat

NUMBER = 20_000
ROUNDS = 41


def scope_block() -> None:
    with anyio.CancelScope():
        pass


async def measure() -> list[float]:
    ratios = []
    for round_ in range(ROUNDS):
        times = {}
        # Alternate which one runs first: whichever follows a switch pays for the
        # type's refilled method cache, and the machine's noise drifts.
        for bridged in ((False, True) if round_ % 2 else (True, False)):
            if bridged:
                anyio_compat.install()
            else:
                anyio_compat.uninstall()
            timeit.timeit(scope_block, number=NUMBER // 10)  # warm up
            times[bridged] = timeit.timeit(scope_block, number=NUMBER)
        ratios.append(times[True] / times[False])
    anyio_compat.uninstall()
    stock_us = timeit.timeit(scope_block, number=NUMBER) / NUMBER * 1e6
    print(f"stock: {stock_us:.3f} us per block")
    return ratios


def main() -> None:
    ratios = asyncio.run(measure())
    print(f"median ratio bridged/stock over {ROUNDS} interleaved rounds of {NUMBER}: "
          f"{statistics.median(ratios):.4f} (min {min(ratios):.4f}, max {max(ratios):.4f})")


if __name__ == "__main__":
    main()
