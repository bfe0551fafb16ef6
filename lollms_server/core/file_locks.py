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
    """Take the exclusive lock of an open file at once; False when another holder has it, OSError when the file
    system cannot lock."""
    try:
        if fcntl is not None:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        else:
            msvcrt.locking(descriptor, msvcrt.LK_NBLCK, 1)
    except (BlockingIOError, PermissionError):
        return False
    except OSError:
        if fcntl is None:  # msvcrt says "locked" with EACCES or EDEADLOCK
            return False
        raise
    return True


@contextlib.contextmanager
def exclusive_lock(path: Path, timeout: float, what: str) -> Iterator[None]:
    """Hold the lock of ``path`` (a lock file, created ``0600`` when missing and never removed), waiting at most
    ``timeout`` seconds for another holder; ``LockBusyError`` naming ``what`` after that."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise UnavailableError(f"{what} cannot be locked: {path}: {exc.strerror or exc}") from None
    try:
        deadline = time.monotonic() + timeout
        while not _locked(descriptor, path, what):
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


def _locked(descriptor: int, path: Path, what: str) -> bool:
    try:
        return try_lock(descriptor)
    except OSError as exc:  # a file system without locks: refuse rather than write unguarded
        raise UnavailableError(f"{what} cannot be locked: {path}: {exc.strerror or exc}") from None


@contextlib.contextmanager
def writing(path: Path, mode: int) -> Iterator[None]:
    """Create ``path`` (it must not exist) with ``mode`` and mark it as being written until the block ends, so
    ``remove_if_abandoned`` leaves it alone. POSIX: a lock held on it. Windows keeps no mark: there a file open
    elsewhere can be neither renamed nor removed, so it is closed at once (and cannot be removed while a writer
    has it open)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    if fcntl is None:
        os.close(descriptor)
        yield
        return
    try:
        with contextlib.suppress(OSError):  # a file system without locks: the file is written unmarked
            try_lock(descriptor)  # a file just created exclusively: nobody else holds it
        yield
    finally:
        os.close(descriptor)


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
        try:
            abandoned = try_lock(descriptor)
        except OSError:
            abandoned = False  # a file system without locks cannot tell: kept
        if abandoned:
            path.unlink(missing_ok=True)
        return abandoned
    finally:
        os.close(descriptor)
