"""The artifact store: unguessable ids, no way out of its folder, private files, the size and count caps, expiry,
and accounting kept in memory (a store does not list the folder)."""

from __future__ import annotations

import contextlib
import os
import random
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lollms_server.core.api_keys import Principal
from lollms_server.core.artifacts import ARTIFACT_PATH_PREFIX, ID_LENGTH, ArtifactStore, Usage, checked_mime_type
from lollms_server.core.errors import NotFoundError, PayloadTooLargeError

OWNER = Principal(name="alice", role="user")


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def store_in(
    tmp_path: Path, max_bytes: int = 10_000, ttl: float = 60.0, max_count: int = 1000, rescan_seconds: float = 60.0
) -> tuple[ArtifactStore, Clock]:
    clock = Clock()
    store = ArtifactStore(
        tmp_path / "artifacts",
        max_bytes=max_bytes,
        max_count=max_count,
        ttl_seconds=ttl,
        rescan_seconds=rescan_seconds,
        clock=clock,
    )
    return store, clock


def replica(folder: Path, clock: Clock | None = None) -> ArtifactStore:
    """A store on a folder another store uses too."""
    return ArtifactStore(
        folder, max_bytes=1 << 20, max_count=1000, ttl_seconds=600, rescan_seconds=60, clock=clock or Clock()
    )


REAL_SCANDIR = os.scandir  # for the test's own look at the folder, never counted


@pytest.fixture
def listings(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The folders listed (os.scandir, which Path.iterdir and glob use too, or os.listdir) while the test runs."""
    listed: list[str] = []

    def counted(real: Any) -> Any:
        def listing(path: Any = ".") -> Any:
            listed.append(str(path))
            return real(path)

        return listing

    monkeypatch.setattr(os, "scandir", counted(os.scandir))
    monkeypatch.setattr(os, "listdir", counted(os.listdir))
    yield listed


def on_disk(store: ArtifactStore) -> Usage:
    """What the folder holds: complete artifacts that have not expired, by their files."""
    with REAL_SCANDIR(store.folder) as entries:
        sizes = [
            info.st_size
            for entry in entries
            if entry.name.endswith(".data") and (info := entry.stat()).st_mtime + store.ttl_seconds > store.clock()
        ]
    return Usage(len(sizes), sum(sizes))


async def test_an_artifact_is_its_makers_and_the_admins(tmp_path: Path) -> None:
    """Another key gets what an unknown id gets (nothing to probe); an admin key reads any; an artifact stored
    without an owner (before owners were recorded) is an admin's only."""
    store, _ = store_in(tmp_path)
    artifact = await store.put(b"alice's audio", "audio/wav", OWNER)
    unowned = await store.put(b"old", "audio/wav")
    for reader in (Principal(name="mallory", role="user"), Principal(name="Alice", role="user")):
        with pytest.raises(NotFoundError, match="unknown or expired"):
            await store.get(artifact.id, reader)
    with pytest.raises(NotFoundError):
        await store.get(unowned.id, OWNER)
    admin = Principal(name="root", role="admin")
    assert (await store.get(artifact.id, admin)).file.read_bytes() == b"alice's audio"
    assert (await store.get(unowned.id, admin)).file.read_bytes() == b"old"
    assert (await store.get(artifact.id, OWNER)).file.read_bytes() == b"alice's audio"


async def test_put_then_get_returns_the_bytes_and_mime_type(tmp_path: Path) -> None:
    store, clock = store_in(tmp_path)
    artifact = await store.put(b"\x89PNG-bytes", "image/png", OWNER)
    assert len(artifact.id) == ID_LENGTH and artifact.path == f"{ARTIFACT_PATH_PREFIX}{artifact.id}"
    assert (artifact.mime_type, artifact.size, artifact.expires_at) == ("image/png", 10, clock.now + 60)
    found = await store.get(artifact.id, OWNER)
    assert found.file.read_bytes() == b"\x89PNG-bytes"
    assert found.artifact == artifact


async def test_ids_are_distinct_and_files_private(tmp_path: Path) -> None:
    store, _ = store_in(tmp_path)
    ids = {(await store.put(b"x", "image/png", OWNER)).id for _ in range(20)}
    assert len(ids) == 20
    for path in store.folder.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE(store.folder.stat().st_mode) == 0o700
    assert not [path for path in store.folder.iterdir() if "writing" in path.name]


@pytest.mark.parametrize(
    "artifact_id",
    [
        "../secret",
        "..%2Fsecret",
        "/etc/passwd",
        "a" * (ID_LENGTH - 1),
        "a" * (ID_LENGTH + 1),
        "a" * (ID_LENGTH - 3) + "/..",
        "a" * (ID_LENGTH - 5) + ".json",
        "",
    ],
)
async def test_malformed_ids_never_reach_the_disk(tmp_path: Path, artifact_id: str) -> None:
    store, _ = store_in(tmp_path)
    (tmp_path / "secret.data").write_bytes(b"not yours")
    (tmp_path / "secret.json").write_text('{"mime_type": "text/plain"}')
    with pytest.raises(NotFoundError):
        await store.get(artifact_id, OWNER)


async def test_an_id_of_the_right_shape_that_was_never_stored_is_not_found(tmp_path: Path) -> None:
    store, _ = store_in(tmp_path)
    await store.put(b"x", "image/png", OWNER)
    with pytest.raises(NotFoundError):
        await store.get("A" * ID_LENGTH, OWNER)


async def test_expired_artifacts_are_not_served_and_are_deleted(tmp_path: Path) -> None:
    store, clock = store_in(tmp_path, ttl=60)
    artifact = await store.put(b"old", "audio/wav", OWNER)
    clock.now += 59
    assert (await store.get(artifact.id, OWNER)).file.read_bytes() == b"old"
    clock.now += 1
    with pytest.raises(NotFoundError):
        await store.get(artifact.id, OWNER)
    assert list(store.folder.iterdir()) == []


async def test_a_sweep_deletes_what_expired_and_keeps_the_rest(tmp_path: Path) -> None:
    store, clock = store_in(tmp_path, ttl=60)
    old = [await store.put(b"old", "image/png", OWNER) for _ in range(3)]
    clock.now += 30
    young = await store.put(b"young", "image/png", OWNER)
    clock.now += 30
    assert await store.sweep() == 3
    assert sorted(path.name for path in store.folder.iterdir()) == [f"{young.id}.data", f"{young.id}.json"]
    for artifact in old:
        with pytest.raises(NotFoundError):
            await store.get(artifact.id, OWNER)
    assert store.total_bytes() == len(b"young")


async def test_the_cap_evicts_the_oldest_first(tmp_path: Path) -> None:
    store, clock = store_in(tmp_path, max_bytes=3000)
    first = await store.put(b"1" * 1000, "image/png", OWNER)
    clock.now += 1
    second = await store.put(b"2" * 1000, "image/png", OWNER)
    clock.now += 1
    third = await store.put(b"3" * 1000, "image/png", OWNER)
    clock.now += 1
    fourth = await store.put(b"4" * 1500, "image/png", OWNER)
    with pytest.raises(NotFoundError):
        await store.get(first.id, OWNER)
    with pytest.raises(NotFoundError):
        await store.get(second.id, OWNER)
    assert (await store.get(third.id, OWNER)).file.read_bytes() == b"3" * 1000
    assert (await store.get(fourth.id, OWNER)).file.read_bytes() == b"4" * 1500
    assert store.total_bytes() == 2500 <= store.max_bytes


async def test_one_artifact_over_the_cap_is_refused(tmp_path: Path) -> None:
    store, _ = store_in(tmp_path, max_bytes=1024)
    kept = await store.put(b"k" * 1000, "image/png", OWNER)
    with pytest.raises(PayloadTooLargeError, match="max_total_bytes"):
        await store.put(b"x" * 1025, "image/png", OWNER)
    assert (await store.get(kept.id, OWNER)).file.read_bytes() == b"k" * 1000


async def test_leftovers_of_interrupted_writes_are_swept_once_stale(tmp_path: Path) -> None:
    store, clock = store_in(tmp_path, ttl=60)
    kept = await store.put(b"kept", "image/png", OWNER)
    orphan = "B" * ID_LENGTH
    leftover = store.folder / f".{'C' * ID_LENGTH}.0123abcd.writing.data"
    foreign = store.folder / "notes.txt"
    for path in (store.folder / f"{orphan}.json", leftover, foreign):
        path.write_bytes(b"{}")
        os.utime(path, (clock.now, clock.now))
    await store.sweep()
    assert (store.folder / f"{orphan}.json").exists() and leftover.exists()  # may still be being written
    clock.now += 30
    await store.put(b"new", "image/png", OWNER)  # a put lists the folder only when a listing is due
    clock.now += 30
    await store.sweep()
    assert not (store.folder / f"{orphan}.json").exists() and not leftover.exists()
    assert foreign.exists()  # never touches a file it did not write
    with pytest.raises(NotFoundError):
        await store.get(kept.id, OWNER)


def test_mime_types_are_normalised_or_replaced() -> None:
    assert checked_mime_type("Image/PNG; charset=x") == "image/png"
    assert checked_mime_type("image/svg+xml") == "image/svg+xml"
    assert checked_mime_type(None) == "application/octet-stream"
    assert checked_mime_type("text/html\r\nX-Evil: 1") == "application/octet-stream"
    assert checked_mime_type("nonsense") == "application/octet-stream"


async def test_replicas_sharing_the_folder_serve_each_others_artifacts(tmp_path: Path) -> None:
    """get reads the folder: what one replica stored, another serves (the artifacts folder on shared storage)."""
    one, other = replica(tmp_path / "shared"), replica(tmp_path / "shared")
    stored = await one.put(b"made by replica one", "image/png", OWNER)
    served = await other.get(stored.id, OWNER)
    assert served.file.read_bytes() == b"made by replica one" and served.artifact.mime_type == "image/png"


async def test_storing_does_not_list_the_folder(tmp_path: Path, listings: list[str]) -> None:
    """Once the folder has been listed (at start-up), stores keep the accounting in memory until the next listing
    is due: what appears in the folder meanwhile (another replica's artifacts, expired) stays untouched."""
    store, clock = store_in(tmp_path, max_bytes=1 << 20, ttl=600, rescan_seconds=300)
    await store.sweep()
    assert len(listings) == 1
    planted = "P" * ID_LENGTH  # another replica's artifact, already expired
    store.folder.mkdir(parents=True, exist_ok=True)
    for suffix in (".data", ".json"):
        path = store.folder / f"{planted}{suffix}"
        path.write_bytes(b"{}")
        os.utime(path, (clock.now - 700, clock.now - 700))
    for _ in range(100):
        clock.now += 2
        await store.put(b"x" * 100, "image/png", OWNER)
    assert listings == [str(store.folder)]  # the sweep's, and no other
    assert (store.folder / f"{planted}.data").exists()
    assert store.usage() == Usage(100, 10_000)
    clock.now += 100  # 300 s after the listing: the next store lists the folder again
    await store.put(b"y", "image/png", OWNER)
    assert len(listings) == 2
    assert not (store.folder / f"{planted}.data").exists() and not (store.folder / f"{planted}.json").exists()


async def test_the_count_cap_evicts_the_oldest_first(tmp_path: Path) -> None:
    store, clock = store_in(tmp_path, max_bytes=1 << 20, max_count=3)
    stored = []
    for index in range(5):
        clock.now += 1
        stored.append(await store.put(str(index).encode(), "text/plain", OWNER))
    for artifact in stored[:2]:
        with pytest.raises(NotFoundError):
            await store.get(artifact.id, OWNER)
    assert [(await store.get(artifact.id, OWNER)).file.read_bytes() for artifact in stored[2:]] == [b"2", b"3", b"4"]
    assert store.usage() == Usage(3, 3) == on_disk(store)


async def test_the_accounting_follows_stores_evictions_expiry_and_a_restart(
    tmp_path: Path, listings: list[str]
) -> None:
    """200 random steps (stores of random sizes, time passing, reads of expired artifacts) without any listing of
    the folder after the first: after each, the accounting equals what the folder holds, under both caps. A new
    store on the same folder (a restart) accounts for the same."""
    store, clock = store_in(tmp_path, max_bytes=20_000, ttl=120, max_count=25, rescan_seconds=10**9)
    draw = random.Random(25)
    stored = []
    for _ in range(200):
        step = draw.random()
        if step < 0.7:
            stored.append(await store.put(b"z" * draw.randint(1, 3000), "image/png", OWNER))
        elif step < 0.9:
            clock.now += draw.uniform(0, 40)
        elif stored:
            with contextlib.suppress(NotFoundError):  # an expired one is deleted by the read
                await store.get(draw.choice(stored).id, OWNER)
        usage = store.usage()
        assert usage == on_disk(store)
        assert usage.bytes <= 20_000 and usage.count <= 25
    assert len(listings) == 1  # the first store's
    restarted = ArtifactStore(
        store.folder, max_bytes=20_000, max_count=25, ttl_seconds=120, rescan_seconds=10**9, clock=clock
    )
    await restarted.sweep()
    assert restarted.usage() == store.usage() == on_disk(store)


async def test_a_listing_takes_in_what_another_replica_stored(tmp_path: Path) -> None:
    clock = Clock()
    one, other = replica(tmp_path / "shared", clock), replica(tmp_path / "shared", clock)
    await one.put(b"1" * 10, "image/png", OWNER)
    await other.put(b"2" * 20, "image/png", OWNER)  # its first store lists the folder: it sees one's
    await one.put(b"3" * 30, "image/png", OWNER)
    assert one.usage() == Usage(2, 40)  # other's is not known to one until one lists the folder again
    clock.now += 60
    assert one.usage() == other.usage() == Usage(3, 60)
