"""The one file writer: atomic replacement, modes kept, new secret-bearing files private, links kept."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from lollms_server.core.atomic_files import atomic_path, atomic_write_bytes


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask_022() -> Iterator[None]:
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def test_a_new_private_file_is_0600_and_a_plain_one_follows_the_umask(tmp_path: Path, umask_022: None) -> None:
    atomic_write_bytes(tmp_path / "secret.yaml", b"a: 1\n", private=True)
    atomic_write_bytes(tmp_path / "plain.yaml", b"a: 1\n")
    assert mode(tmp_path / "secret.yaml") == 0o600
    assert mode(tmp_path / "plain.yaml") == 0o644


@pytest.mark.parametrize("original", [0o600, 0o640, 0o644])
def test_an_existing_file_keeps_its_mode(tmp_path: Path, umask_022: None, original: int) -> None:
    path = tmp_path / "config.yaml"
    path.write_bytes(b"old\n")
    path.chmod(original)
    atomic_write_bytes(path, b"new\n", private=True)
    assert path.read_bytes() == b"new\n" and mode(path) == original


def test_a_symlink_is_written_through_and_stays_a_link(tmp_path: Path) -> None:
    real = tmp_path / "real" / "config.yaml"
    real.parent.mkdir()
    real.write_bytes(b"old\n")
    real.chmod(0o600)
    link = tmp_path / "config.yaml"
    link.symlink_to(real)
    atomic_write_bytes(link, b"new\n")
    assert link.is_symlink() and real.read_bytes() == b"new\n" and mode(real) == 0o600


def test_a_failed_write_leaves_the_original_and_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_bytes(b"old\n")
    with pytest.raises(RuntimeError), atomic_path(path) as temporary:
        temporary.write_bytes(b"half")
        raise RuntimeError("crash while writing")
    assert path.read_bytes() == b"old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["config.yaml"]


def test_exclusive_refuses_anything_at_the_name_even_a_dangling_link(tmp_path: Path) -> None:
    existing, dangling = tmp_path / "a.yaml", tmp_path / "b.yaml"
    existing.write_bytes(b"keep\n")
    dangling.symlink_to(tmp_path / "nowhere.yaml")
    for path in (existing, dangling):
        with pytest.raises(FileExistsError):
            atomic_write_bytes(path, b"new\n", exclusive=True)
    assert existing.read_bytes() == b"keep\n" and not (tmp_path / "nowhere.yaml").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.yaml", "b.yaml"]
    atomic_write_bytes(tmp_path / "c.yaml", b"fresh\n", exclusive=True, private=True)
    assert mode(tmp_path / "c.yaml") == 0o600
