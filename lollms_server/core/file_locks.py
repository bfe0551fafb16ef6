"""Advisory locks on files, between processes: one writer of a shared file at a time, and a way to tell a file
that is still being written from one a killed writer left behind (the kernel drops a dead process's locks).

POSIX: ``flock`` (on Linux over NFS it becomes a byte-range lock the other clients see). Windows: ``msvcrt``'s
lock of the first byte. Each lock goes through its own open file, so two threads of one process exclude each
other as two processes do (except over NFS, where a process does not exclude itself: callers serialise their
own threads too).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

from lollms_server.core.errors import UnavailableError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]
    import msvcrt

POLL_SECONDS = 0.02  # how often a held lock is tried again while waiting for it


class LockBusyError(UnavailableError):
    """Another process held a file's lock for longer than the caller may wait (503 with Retry-After)."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def try_lock(descriptor: int) -> bool:
    """Take the exclusive lock of an open file at once; False when another holder has it."""
    try:
        if fcntl is not None:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        else:
            msvcrt.locking(descriptor, msvcrt.LK_NBLCK, 1)
    except (BlockingIOError, PermissionError):
        return False
    except OSError as exc:
        if fcntl is None:  # msvcrt says "locked" with EACCES or EDEADLOCK
            return False
        raise exc
    return True


@contextlib.contextmanager
def exclusive_lock(path: Path, timeout: float, what: str) -> Iterator[None]:
    """Hold the lock of ``path`` (a lock file, created ``0600`` when missing and never removed), waiting at most
    ``timeout`` seconds for another holder; ``LockBusyError`` naming ``what`` after that."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + timeout
        while not try_lock(descriptor):
            if time.monotonic() >= deadline:
                raise LockBusyError(
                    f"{what} is being changed by another process (it holds {path} for more than {timeout:g} s); "
                    "try again",
                    retry_after=timeout,
                )
            time.sleep(POLL_SECONDS)
        yield
    finally:
        os.close(descriptor)  # releases the lock


def remove_if_abandoned(path: Path) -> bool:
    """Remove ``path`` unless a live process holds its lock (or, on Windows, has it open); True when removed."""
    if fcntl is None:
        try:
            path.unlink()  # Windows refuses to remove a file another process has open
        except FileNotFoundError:
            return False
        except PermissionError:
            return False
        return True
    try:
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return False  # gone meanwhile, or a link: not ours to remove
    try:
        if not try_lock(descriptor):
            return False
        path.unlink(missing_ok=True)
        return True
    finally:
        os.close(descriptor)
