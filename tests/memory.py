"""How much this process's resident memory grew at its peak over a block of a test: Linux's VmHWM (the high-water
mark of VmRSS), reset through /proc/self/clear_refs when the block starts. It counts what C libraries allocate too
(libsndfile, FFmpeg, Pillow), which tracemalloc does not see."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

_PROC = Path("/proc/self")


def _kib(field: str) -> int:
    for line in (_PROC / "status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


class PeakGrowth:
    mib: float = 0.0


@contextmanager
def peak_rss_growth() -> Iterator[PeakGrowth]:
    """``with peak_rss_growth() as peak: ...``; then ``peak.mib`` is the most the RSS grew by inside the block.
    Skips the test where the kernel cannot reset the mark."""
    try:
        (_PROC / "clear_refs").write_text("5")  # VmHWM := VmRSS
    except OSError as exc:
        pytest.skip(f"the peak RSS cannot be reset here: {exc}")
    growth = PeakGrowth()
    before = _kib("VmRSS")
    yield growth
    growth.mib = (_kib("VmHWM") - before) / 1024
