"""What storing one artifact costs as the store fills up (issue 25): put time against the number already stored.

    venv/bin/python bench/bench_artifacts.py          # --sizes 100 1000 10000 --puts 200 --bytes 65536

For each size N: a fresh store in a temporary folder on the same disk as the test runs (``$TMPDIR``) is filled
with N artifacts, then ``--puts`` more are stored one by one and each ``put`` is timed (the synchronous call the
worker thread makes, so the figure is the store's own work). Twice per size: with room to spare (nothing is
evicted), and full (a count cap of N: every put evicts the oldest). Printed: the median and p90 put time, and how
many times the folder was listed (``os.scandir``) during the timed puts. Nothing else runs meanwhile.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout this file is in, not another install
from lollms_server.core.api_keys import Principal  # noqa: E402
from lollms_server.core.artifacts import ArtifactStore  # noqa: E402

OWNER = Principal(name="bench", role="user")


@contextmanager
def counted_listings() -> Iterator[list[int]]:
    """Counts the calls of os.scandir while it is open (the store lists its folder with it)."""
    calls = [0]
    real = os.scandir

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return real(*args, **kwargs)

    os.scandir = counting  # type: ignore[assignment]
    try:
        yield calls
    finally:
        os.scandir = real


def make_store(folder: Path, count: int, full: bool) -> ArtifactStore:
    """A store that keeps ``count`` artifacts when ``full`` (every further put evicts one), else room to spare.
    Built with the count cap when the store has one (after issue 25), else with a byte cap of ``count`` items."""
    try:
        return ArtifactStore(
            folder, max_bytes=1 << 40, max_count=count if full else 1 << 30, ttl_seconds=3600, rescan_seconds=60
        )
    except TypeError:  # the store before issue 25 had no count cap: the same by bytes, items of equal size
        return ArtifactStore(folder, (count * ITEM_BYTES) if full else 1 << 40, 3600)  # type: ignore[misc]


ITEM_BYTES = 65536


def run(count: int, puts: int, full: bool) -> tuple[float, float, int]:
    payload = os.urandom(ITEM_BYTES)
    with tempfile.TemporaryDirectory(prefix="bench-artifacts-") as root:
        store = make_store(Path(root) / "artifacts", count, full)
        for _ in range(count):
            store.put_sync(payload, "image/png", OWNER)
        timings = []
        with counted_listings() as listings:
            for _ in range(puts):
                started = time.perf_counter()
                store.put_sync(payload, "image/png", OWNER)
                timings.append(time.perf_counter() - started)
        timings.sort()
        return statistics.median(timings) * 1000, timings[int(len(timings) * 0.9)] * 1000, listings[0]


def main() -> None:
    global ITEM_BYTES
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--puts", type=int, default=200)
    parser.add_argument("--bytes", type=int, default=ITEM_BYTES)
    args = parser.parse_args()
    ITEM_BYTES = args.bytes
    print(f"put of a {ITEM_BYTES:,}-byte artifact, {args.puts} puts per figure (ms)")  # noqa: T201
    for count in args.sizes:
        for full in (False, True):
            median, p90, listings = run(count, args.puts, full)
            state = "full, each put evicts" if full else "room to spare"
            print(  # noqa: T201
                f"  {count:>6} stored, {state:<22} median {median:7.2f}  p90 {p90:7.2f}  folder listings {listings}"
            )


if __name__ == "__main__":
    main()
