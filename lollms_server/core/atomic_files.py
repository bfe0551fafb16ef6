"""The one way lollms_server writes a file: atomically, keeping the file's mode, private when new.

A temporary file in the target's folder is written, flushed to disk and renamed over the target, so a
crash leaves either the old file or the new one, never half of each. An existing file keeps its
permission bits (and its owner, when we may set it); a new file is created ``0600`` when it may hold
secrets (``private=True``), else with the umask's default. A symbolic link is written through: the file
it points to is replaced and the link stays.

The temporary file is named ``.<name>.<8 hex digits>.writing<suffix>`` and marked as being written while it is
(``file_locks.writing``): a process killed meanwhile leaves it behind, and ``remove_interrupted_writes`` removes
such leftovers, never a file of another name nor one a live writer holds.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path

from lollms_server.core.file_locks import remove_if_abandoned, writing

PRIVATE_MODE = 0o600
_TEMPORARY_NAME = re.compile(r"\..+\.[0-9a-f]{8}\.writing(\.[^.]+)?")
_DEFAULT_MODE = 0o666  # narrowed by the umask, as open() does


def _real_target(path: Path) -> Path:
    """The file a write to ``path`` must replace: a symlink's target, so the link survives the rename."""
    return Path(os.path.realpath(path, strict=True)) if path.is_symlink() else path  # OSError: dangling, loop


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable; not every platform can open a folder."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


@contextlib.contextmanager
def atomic_path(path: Path, *, private: bool = False, exclusive: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` to write into (it keeps ``path``'s suffix, so format
    handlers chosen by extension work); on success it replaces ``path`` atomically.

    ``exclusive`` refuses (``FileExistsError``) when anything, even a dangling link, exists at ``path``.
    """
    target = Path(path) if exclusive else _real_target(Path(path))
    target.parent.mkdir(parents=True, exist_ok=True)
    existing = None if exclusive else _stat_or_none(target)
    if exclusive and os.path.lexists(target):
        raise FileExistsError(f"{target} already exists")
    temporary = target.with_name(f".{target.stem}.{secrets.token_hex(4)}.writing{target.suffix}")
    create_mode = PRIVATE_MODE if private else _DEFAULT_MODE
    with writing(temporary, create_mode), _removed_at_last(temporary):
        yield temporary
        # Set again after writing: a format handler may have recreated the temporary file.
        if existing is not None:
            os.chmod(temporary, stat.S_IMODE(existing.st_mode))
            with contextlib.suppress(PermissionError):
                os.chown(temporary, existing.st_uid, existing.st_gid)
        elif private:
            os.chmod(temporary, PRIVATE_MODE)
        _fsync_file(temporary)
        if exclusive:
            _link_exclusively(temporary, target)
        else:
            os.replace(temporary, target)
        _fsync_folder(target.parent)


@contextlib.contextmanager
def _removed_at_last(temporary: Path) -> Iterator[None]:
    try:
        yield
    finally:
        temporary.unlink(missing_ok=True)


def remove_interrupted_writes(folder: Path) -> list[Path]:
    """Remove the temporary files that writes into ``folder`` left when their process was killed: only names of
    our pattern, only regular files, never one a live writer holds. Returns what was removed."""
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return []
    removed = [
        Path(entry.path)
        for entry in entries
        if _TEMPORARY_NAME.fullmatch(entry.name)
        and entry.is_file(follow_symlinks=False)
        and remove_if_abandoned(Path(entry.path))
    ]
    if removed:
        _fsync_folder(folder)
    return sorted(removed)


def atomic_write_bytes(path: Path, data: bytes, *, private: bool = False, exclusive: bool = False) -> None:
    """Write ``data`` to ``path`` atomically (see ``atomic_path``)."""
    with atomic_path(path, private=private, exclusive=exclusive) as temporary:
        with open(temporary, "wb") as handle:
            handle.write(data)


def _stat_or_none(path: Path) -> os.stat_result | None:
    try:
        return path.stat()
    except FileNotFoundError:
        return None


def _fsync_file(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _link_exclusively(temporary: Path, target: Path) -> None:
    """Give ``temporary`` the name ``target`` unless something took that name meanwhile."""
    try:
        os.link(temporary, target)
    except FileExistsError:
        raise
    except OSError:
        # No hard links on this file system: the check above is then the only guard.
        if os.path.lexists(target):
            raise FileExistsError(f"{target} already exists") from None
        os.replace(temporary, target)
