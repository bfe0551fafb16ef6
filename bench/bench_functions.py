"""What running custom functions in worker processes costs, and what it bounds (issue 25).

    venv/bin/python bench/bench_functions.py            # --calls 2000

1. Per-call overhead of a warm worker: a function that returns at once, and math_tools.evaluate("12*7+1"),
   through FunctionManager.execute_function (worker process) against awaiting the same function in-process.
2. Cold start: the first call of a fresh FunctionManager (spawns the worker, which imports the function files).
3. The event loop while a function computes for 2 s without yielding: the longest stall a ticker task sees,
   in-process (as before) against in a worker.
4. A function that never returns (function_timeout 1 s): how long until the caller has its error.
5. A function that fills memory (function_memory_bytes 256 MiB, it asks for 4 GiB): time to the MemoryError,
   the worker's peak RSS (getrusage of reaped children), the bench process's own RSS before and after.
6. math_tools.evaluate on hostile expressions: the slowest refusal.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

from lollms_server.core.config import builtin_zoo_dir
from lollms_server.core.functions import FunctionManager
from lollms_server.core.plugin_import import import_file

MIB = 1 << 20
FUNCTIONS = """
import time


async def noop() -> int:
    return 1


async def compute(seconds: float) -> str:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass
    return "done"


async def spin() -> None:
    while True:
        pass


async def hog(megabytes: int) -> int:
    chunks = [b"x" * (32 << 20) for _ in range(megabytes // 32)]
    return len(chunks)
"""
HOSTILE = ["9**9**9", "10**10**8", "(10**299)**1000", "round(1, -10**299)", "(-8)**0.5", "9" * 190 + "**9"]


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def summary(samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[int(len(ordered) * 0.99) - 1]
    return f"median {statistics.median(ordered) * 1e6:8.1f} µs   p99 {p99 * 1e6:8.1f} µs"


async def timed_calls(call: Any, count: int) -> list[float]:
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        await call()
        samples.append(time.perf_counter() - started)
    return samples


async def max_stall(work: Any) -> float:
    """The longest gap between two ticks of a 1 ms ticker while ``work`` runs."""
    gaps: list[float] = []
    running = True

    async def ticker() -> None:
        last = time.perf_counter()
        while running:
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0.01)
    await work()
    running = False
    await task
    return max(gaps)


def manager(folder: Path, **settings: Any) -> FunctionManager:
    functions = FunctionManager([(builtin_zoo_dir() / "functions", "builtin"), (folder, "personal")], **settings)
    functions.discover()
    return functions


async def main(calls: int) -> None:
    folder = Path(tempfile.mkdtemp(prefix="bench_functions_"))
    (folder / "bench_tools.py").write_text(textwrap.dedent(FUNCTIONS))
    functions = manager(folder)
    direct = functions.functions
    await functions.execute_function("bench_tools.noop")  # warm
    print(f"1. per call, {calls} calls each (a warm worker)")
    for name, args in (("bench_tools.noop", {}), ("math_tools.evaluate", {"expression": "12*7+1"})):
        inside = await timed_calls(lambda name=name, args=args: direct[name].function(**args), calls)
        worker = await timed_calls(lambda name=name, args=args: functions.execute_function(name, args), calls)
        added = statistics.median(worker) - statistics.median(inside)
        print(f"   {name:22s} in-process: {summary(inside)}")
        print(f"   {'':22s} worker    : {summary(worker)}   added median {added * 1e6:.1f} µs")

    cold = []
    for _ in range(5):
        fresh = manager(folder)
        started = time.perf_counter()
        await fresh.execute_function("bench_tools.noop")
        cold.append(time.perf_counter() - started)
        await fresh.close()
    print(f"2. cold start (first call of a fresh manager, 5 runs): median {statistics.median(cold) * 1000:.0f} ms")

    in_process = await max_stall(lambda: direct["bench_tools.compute"].function(2.0))
    in_worker = await max_stall(lambda: functions.execute_function("bench_tools.compute", {"seconds": 2.0}))
    print(
        f"3. longest event-loop stall during a 2 s computation: in-process {in_process * 1000:.0f} ms, "
        f"in a worker {in_worker * 1000:.1f} ms"
    )

    quick = manager(folder, timeout=1.0)
    started = time.perf_counter()
    ok, message = await quick.execute_function("bench_tools.spin")
    print(f"4. never returns, function_timeout 1 s: error after {time.perf_counter() - started:.3f} s ({message!r})")
    await quick.close()

    await functions.close()
    bounded = manager(folder, memory_bytes=256 * MIB)
    before = rss_mib()
    started = time.perf_counter()
    ok, message = await bounded.execute_function("bench_tools.hog", {"megabytes": 4096})
    elapsed = time.perf_counter() - started
    await bounded.close()
    worker_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(
        f"5. fills memory, bound 256 MiB, asks 4 GiB: MemoryError after {elapsed:.3f} s; worker peak RSS "
        f"{worker_peak:.0f} MiB; this process {before:.0f} -> {rss_mib():.0f} MiB ({message!r})"
    )

    math_tools = import_file(builtin_zoo_dir() / "functions" / "math_tools.py", "_bench_math_tools")
    slowest = 0.0
    for expression in HOSTILE:
        started = time.perf_counter()
        try:
            await math_tools.evaluate(expression)
        except ValueError:
            pass
        slowest = max(slowest, time.perf_counter() - started)
    print(f"6. math_tools.evaluate, {len(HOSTILE)} hostile expressions: slowest refusal {slowest * 1e6:.0f} µs")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=2000)
    asyncio.run(main(parser.parse_args().calls))
