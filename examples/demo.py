"""A short tour of scopeloop: deadlines, shields, task groups, balanced cancellation."""

import asyncio

import scopeloop


async def worker(name: str, delay: float) -> None:
    try:
        await scopeloop.sleep(delay)
        print(f"  {name}: finished after {delay}s")
    except asyncio.CancelledError:
        with scopeloop.CancelScope(shield=True):
            await scopeloop.sleep(0.05)  # cleanup that must not be interrupted
        print(f"  {name}: cancelled, cleaned up behind a shield")
        raise


async def main() -> None:
    task = asyncio.current_task()
    print("1. a deadline that expires quietly")
    with scopeloop.move_on_after(0.1) as scope:
        await scopeloop.sleep(10)
    print(f"   cancelled_caught={scope.cancelled_caught}, cancelling()={task.cancelling()}")

    print("2. a task group whose slow child is cancelled by a deadline")
    with scopeloop.move_on_after(0.2):
        async with scopeloop.create_task_group() as tg:
            tg.start_soon(worker, "fast", 0.05)
            tg.start_soon(worker, "slow", 5)
    print(f"   cancelling()={task.cancelling()} (scope cancellation never shows here)")

    print("3. fail_after raises TimeoutError, and asyncio.timeout still works afterwards")
    try:
        with scopeloop.fail_after(0.05):
            await scopeloop.sleep(1)
    except TimeoutError:
        print("   TimeoutError from fail_after")
    try:
        async with asyncio.timeout(0.05):
            await asyncio.sleep(1)
    except TimeoutError:
        print("   TimeoutError from asyncio.timeout")
    print(f"   cancelling()={task.cancelling()}")


if __name__ == "__main__":
    scopeloop.run(main)
    print("backend:", scopeloop.default_backend())
