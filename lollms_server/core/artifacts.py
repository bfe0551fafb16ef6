"""The artifact store: binary outputs kept on disk for a while and handed out by an unguessable id.

Each artifact is two files in the store's folder: ``<id>.data`` (the bytes, written last, so its presence means
the artifact is complete; its modification time is set to the moment it was stored) and ``<id>.json`` (its
mime type and the name of the key that made it). Both are written through ``atomic_files`` and are private
(0600). An artifact is served to the key that made it and to admin keys; to any other key it does not exist
(404). ``get`` reads the folder, so several worker processes (or replicas with the folder on shared storage) serve
what another stored. Contents are never logged.

The accounting (which artifacts are live, oldest first, how many and how many bytes) is kept in memory and updated
by each store, expiry and eviction, so storing costs the same with ten artifacts or ten thousand. Before storing,
expired artifacts are deleted, then the oldest ones until the new one fits under both caps (``max_bytes``,
``max_count``). The folder is listed only by ``sweep`` (at start-up) and by the first store after
``rescan_seconds``: that listing rebuilds the accounting from the files, which takes in what other processes
stored or deleted meanwhile, and removes what interrupted writes left behind.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import anyio

from lollms_server.core.api_keys import Principal
from lollms_server.core.atomic_files import atomic_path, atomic_write_bytes
from lollms_server.core.errors import NotFoundError, PayloadTooLargeError

logger = logging.getLogger(__name__)

# Where the API serves an artifact: the core hands out this path, the API edge serves it.
ARTIFACT_PATH_PREFIX = "/api/v1/artifacts/"
ID_BYTES = 24  # 192 random bits
ID_LENGTH = 32  # len(secrets.token_urlsafe(ID_BYTES))
_ID = re.compile(rf"[A-Za-z0-9_-]{{{ID_LENGTH}}}")
_MIME_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}")
_DATA, _META = ".data", ".json"
# What atomic_files leaves behind when a process dies mid-write: ".<id>.<hex>.writing.<data|json>".
_LEFTOVER = re.compile(rf"\.[A-Za-z0-9_-]{{{ID_LENGTH}}}\.[0-9a-f]{{8}}\.writing\.(data|json)")
DEFAULT_MIME_TYPE = "application/octet-stream"


@dataclass(frozen=True)
class Artifact:
    """One stored artifact; ``expires_at`` is a Unix time."""

    id: str
    mime_type: str
    size: int
    expires_at: float

    @property
    def path(self) -> str:
        """The URL path the API serves it at."""
        return f"{ARTIFACT_PATH_PREFIX}{self.id}"


@dataclass(frozen=True)
class StoredArtifact:
    """An artifact found by ``get``: its file and what to serve it as."""

    artifact: Artifact
    file: Path


@dataclass(frozen=True)
class Usage:
    """What the live artifacts hold, as this process accounts them."""

    count: int
    bytes: int


def is_artifact_id(value: str) -> bool:
    """Whether ``value`` has the exact shape of an id we hand out (nothing else ever reaches the disk)."""
    return bool(_ID.fullmatch(value))


class Ledger:
    """The live artifacts, oldest first (id -> size, stored at), with their count and total size: each change is
    O(1), whatever the number of artifacts."""

    def __init__(self) -> None:
        self._entries: OrderedDict[str, tuple[int, float]] = OrderedDict()
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, artifact_id: str, size: int, stored_at: float) -> None:
        """Record an artifact stored now (after every other: stores happen in time order)."""
        self.discard(artifact_id)
        self._entries[artifact_id] = (size, stored_at)
        self.bytes += size

    def discard(self, artifact_id: str) -> None:
        entry = self._entries.pop(artifact_id, None)
        if entry is not None:
            self.bytes -= entry[0]

    def oldest(self) -> tuple[str, int, float] | None:
        """(id, size, stored at) of the oldest artifact, or None when there is none."""
        for artifact_id, (size, stored_at) in self._entries.items():
            return artifact_id, size, stored_at
        return None

    def replace(self, live: Iterable[tuple[str, int, float]]) -> None:
        """Start again from ``live`` (id, size, stored at), in any order."""
        self._entries = OrderedDict(
            (artifact_id, (size, stored_at)) for artifact_id, size, stored_at in sorted(live, key=lambda item: item[2])
        )
        self.bytes = sum(size for size, _ in self._entries.values())


class ArtifactStore:
    """Binary outputs under ``folder``, at most ``max_bytes`` and ``max_count`` artifacts in all, each kept
    ``ttl_seconds``; the folder is listed again every ``rescan_seconds`` (see the module's docstring)."""

    def __init__(
        self,
        folder: Path,
        *,
        max_bytes: int,
        max_count: int,
        ttl_seconds: float,
        rescan_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.folder = Path(folder)
        self.max_bytes = int(max_bytes)
        self.max_count = int(max_count)
        self.ttl_seconds = float(ttl_seconds)
        self.rescan_seconds = float(rescan_seconds)
        self.clock = clock
        self._lock = threading.Lock()  # one account-and-write at a time in this process
        self._ledger = Ledger()
        self._listed_at: float | None = None  # clock() when the folder was last listed; None: never

    async def put(self, data: bytes, mime_type: str | None, owner: Principal | None = None) -> Artifact:
        """Store ``data`` for ``owner`` (the key whose request made it); PayloadTooLargeError when it alone is over
        the size cap."""
        return await anyio.to_thread.run_sync(self.put_sync, data, mime_type, owner)

    async def get(self, artifact_id: str, reader: Principal) -> StoredArtifact:
        """The artifact ``artifact_id`` as ``reader`` may see it; NotFoundError when it is unknown, malformed,
        expired, or another key's (admins read every artifact)."""
        return await anyio.to_thread.run_sync(self.get_sync, artifact_id, reader)

    async def sweep(self) -> int:
        """List the folder: delete expired artifacts and leftovers, and account for what is there; the number of
        artifacts deleted."""
        return await anyio.to_thread.run_sync(self.sweep_sync)

    def put_sync(self, data: bytes, mime_type: str | None, owner: Principal | None = None) -> Artifact:
        size = len(data)
        if size > self.max_bytes:
            raise PayloadTooLargeError(
                f"an output of {size:,} bytes is over the artifact store's cap (artifacts.max_total_bytes = "
                f"{self.max_bytes:,}); ask for output_format 'base64' or raise the cap"
            )
        mime = checked_mime_type(mime_type)
        with self._lock:
            self._make_folder()
            now = self.clock()
            self._account(now)
            self._make_room(size)
            artifact_id = secrets.token_urlsafe(ID_BYTES)
            meta = json.dumps({"mime_type": mime, "owner": owner.name if owner else None}).encode("utf-8")
            atomic_write_bytes(self._file(artifact_id, _META), meta, private=True, exclusive=True)
            # Dated before it gets its real name, so a listing never sees it undated.
            with atomic_path(self._file(artifact_id, _DATA), private=True, exclusive=True) as temporary:
                temporary.write_bytes(data)
                os.utime(temporary, (now, now))
            self._ledger.add(artifact_id, size, now)
        logger.debug("stored an artifact of %d bytes (%s)", size, mime)
        return Artifact(artifact_id, mime, size, now + self.ttl_seconds)

    def get_sync(self, artifact_id: str, reader: Principal) -> StoredArtifact:
        if not is_artifact_id(artifact_id):
            raise NotFoundError("artifact not found")
        data_file = self._file(artifact_id, _DATA)
        try:
            info = data_file.stat()
            meta = json.loads(self._file(artifact_id, _META).read_bytes())
        except (OSError, ValueError):
            raise NotFoundError("artifact not found (unknown or expired)") from None
        expires_at = info.st_mtime + self.ttl_seconds
        if expires_at <= self.clock():
            # Its files go now; its entry in the accounting, expired too, goes with the next store's expiry.
            self._delete(artifact_id)
            raise NotFoundError("artifact not found (unknown or expired)")
        meta = meta if isinstance(meta, dict) else {}
        if not reader.is_admin and (meta.get("owner") is None or meta.get("owner") != reader.name):
            raise NotFoundError("artifact not found (unknown or expired)")  # the same answer: nothing to probe
        mime = meta.get("mime_type")
        artifact = Artifact(artifact_id, checked_mime_type(mime), info.st_size, expires_at)
        return StoredArtifact(artifact, data_file)

    def sweep_sync(self) -> int:
        with self._lock:
            return self._list_folder(self.clock())

    def usage(self) -> Usage:
        """The unexpired artifacts, as accounted now (the folder is listed when a listing is due)."""
        with self._lock:
            self._account(self.clock())
            return Usage(len(self._ledger), self._ledger.bytes)

    def total_bytes(self) -> int:
        """Bytes held by unexpired artifacts."""
        return self.usage().bytes

    # --- accounting (under the lock) -------------------------------------------------------------------------
    def _account(self, now: float) -> None:
        """Bring the accounting up to ``now``: list the folder when it is due, else drop what has expired."""
        if self._listed_at is None or not 0 <= now - self._listed_at < self.rescan_seconds:
            self._list_folder(now)
            return
        while (oldest := self._ledger.oldest()) is not None and self._stale(oldest[2], now):
            self._forget(oldest[0])

    def _list_folder(self, now: float) -> int:
        """Rebuild the accounting from the files: expired artifacts deleted; the number deleted."""
        live, deleted = [], 0
        for artifact_id, size, stored_at in self._live(now):
            if self._stale(stored_at, now):
                self._delete(artifact_id)
                deleted += 1
            else:
                live.append((artifact_id, size, stored_at))
        self._ledger.replace(live)
        self._listed_at = now
        return deleted

    def _make_room(self, size: int) -> None:
        evicted = 0
        while (oldest := self._ledger.oldest()) is not None and (
            self._ledger.bytes + size > self.max_bytes or len(self._ledger) + 1 > self.max_count
        ):
            self._forget(oldest[0])
            evicted += 1
        if evicted:
            logger.info("artifact store full: evicted the %d oldest artifact(s)", evicted)

    def _forget(self, artifact_id: str) -> None:
        self._delete(artifact_id)
        self._ledger.discard(artifact_id)

    # --- files ----------------------------------------------------------------------------------------------
    def _make_folder(self) -> None:
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)

    def _file(self, artifact_id: str, suffix: str) -> Path:
        return self.folder / f"{artifact_id}{suffix}"

    def _live(self, now: float) -> list[tuple[str, int, float]]:
        """(id, size, stored at) of every complete artifact in the folder; removes stale leftovers on the way."""
        found: list[tuple[str, int, float]] = []
        metas: dict[str, float] = {}
        try:
            entries = list(os.scandir(self.folder))
        except FileNotFoundError:
            return []
        for entry in entries:
            name = entry.name
            try:
                if name.endswith(_DATA) and is_artifact_id(name[: -len(_DATA)]):
                    info = entry.stat(follow_symlinks=False)
                    found.append((name[: -len(_DATA)], info.st_size, info.st_mtime))
                elif name.endswith(_META) and is_artifact_id(name[: -len(_META)]):
                    metas[name[: -len(_META)]] = entry.stat(follow_symlinks=False).st_mtime
                elif _LEFTOVER.fullmatch(name) and self._stale(entry.stat(follow_symlinks=False).st_mtime, now):
                    os.unlink(entry.path)
            except FileNotFoundError:  # deleted meanwhile by another worker
                continue
        complete = {artifact_id for artifact_id, _, _ in found}
        for artifact_id, written_at in metas.items():
            # A description without its data: a write that died (another process may be writing it now).
            if artifact_id not in complete and self._stale(written_at, now):
                self._delete(artifact_id)
        return found

    def _stale(self, written_at: float, now: float) -> bool:
        return written_at + self.ttl_seconds <= now

    def _delete(self, artifact_id: str) -> None:
        for suffix in (_DATA, _META):
            with contextlib.suppress(FileNotFoundError):
                self._file(artifact_id, suffix).unlink()


def checked_mime_type(mime_type: str | None) -> str:
    """A well-formed, lower-case ``type/subtype``; anything else is served as application/octet-stream."""
    if not mime_type:
        return DEFAULT_MIME_TYPE
    value = mime_type.split(";", 1)[0].strip().lower()
    return value if _MIME_TYPE.fullmatch(value) else DEFAULT_MIME_TYPE
