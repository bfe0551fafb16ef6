"""`lollms-server encrypt-secrets` killed with SIGKILL mid-write, then run again: the next run removes the
temporary files the killed run left (only those: never another file, nor one a live writer still holds),
encrypts the plaintext backups written before there was a key, and leaves no plaintext secret in the folder.

The runs are real processes; each is paused at the moment its temporary file is complete (it says so on stdout
and waits on stdin) and killed there, so the kill lands at a known point."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from lollms_server.core.atomic_files import remove_interrupted_writes
from lollms_server.core.binding_manager import BindingManager
from lollms_server.core.config import load_main_config
from lollms_server.core.resource_manager import ResourceManager
from lollms_server.core.secrets import ENCRYPTED_PREFIX, SecretCipher, generate_key
from tests.helpers import write_binding_type

pytestmark = pytest.mark.skipif(os.name != "posix", reason="SIGKILL and POSIX file locks")

PLAINTEXT = "sk-live-never-on-disk-in-clear-42"
# The command line, run until it is about to put a complete temporary file in place with `os.link` (an exclusive
# write: the backup) or `os.replace` (the instance file), where it reports the file and waits to be killed.
PAUSING_CLI = """
import os, sys
from lollms_server.cli import main

def pausing(name, real):
    def call(source, target, *args, **kwargs):
        if name == sys.argv[1] and ".writing" in os.fspath(source):
            sys.stdout.write(f"paused {os.fspath(source)}\\n")
            sys.stdout.flush()
            sys.stdin.readline()
        return real(source, target, *args, **kwargs)
    return call

os.link, os.replace = pausing("link", os.link), pausing("replace", os.replace)
sys.exit(main(sys.argv[2:]))
"""


def environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("LOLLMS_CONFIG_DIR", "LOLLMS_ENCRYPTION_KEY")}


@contextlib.contextmanager
def paused_run(config_dir: Path, at: str) -> Iterator[Path]:
    """An encrypt-secrets run stopped just before it puts its temporary file in place with ``at`` (yielded), and
    killed with SIGKILL when the block ends."""
    process = subprocess.Popen(
        [sys.executable, "-c", PAUSING_CLI, at, "--config", str(config_dir), "encrypt-secrets"],
        env=environment(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # the state: its temporary file is written, the write not finished
        assert line.startswith("paused "), f"the run did not pause: {line!r}"
        yield Path(line.removeprefix("paused ").strip())
    finally:
        process.send_signal(signal.SIGKILL)
        _, errors = process.communicate()
    assert process.returncode == -signal.SIGKILL, errors


def write_main_config(config_dir: Path, key: str | None) -> Path:
    security: dict[str, object] = {"allowed_api_keys": ["k-1234567890abcdef"]}
    if key:
        security["encryption_key"] = key
    values = {"security": security, "bindings_map": {"remote": "tcp_binding"}, "paths": {"bindings_folder": "pb"}}
    path = config_dir / "main_config.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def migrated_without_a_key(config_dir: Path) -> None:
    """An instance file of version 0.9 holding a plaintext secret, migrated by a start made before there was an
    encryption key: its backup (remote.yaml.v0.9.bak) is plaintext."""
    folder = config_dir / "bindings"
    folder.mkdir(parents=True)
    write_binding_type(config_dir / "pb")
    (folder / "remote.yaml").write_text(f"__version__: '0.9'\ntype: tcp_binding\napi_key: {PLAINTEXT}\n")
    manager = BindingManager(load_main_config(write_main_config(config_dir, None)), ResourceManager())

    async def start_and_stop() -> None:
        await manager.start()
        await manager.stop()

    asyncio.run(start_and_stop())
    assert PLAINTEXT in (folder / "remote.yaml.v0.9.bak").read_text()


def test_the_next_run_removes_what_killed_runs_left_and_encrypts_old_backups(tmp_path: Path) -> None:
    config_dir = tmp_path / "conf"
    folder = config_dir / "bindings"
    migrated_without_a_key(config_dir)
    key = generate_key()
    write_main_config(config_dir, key)
    # Files that look alike but are not our temporary files: an editor's swap file, a name without the 8 hex
    # digits, and a link with our pattern pointing elsewhere.
    elsewhere = tmp_path / "elsewhere.yaml"
    elsewhere.write_text("mine: true\n")
    decoys = [folder / ".remote.yaml.swp", folder / ".remote.12345.writing.yaml", folder / ".x.0123abcd.writing.yaml"]
    decoys[0].write_text("swap")
    decoys[1].write_text("not ours")
    decoys[2].symlink_to(elsewhere)

    # Killed while encrypting the old plaintext backup: its temporary file stays. While the run is alive, a
    # cleanup leaves that file alone.
    with paused_run(config_dir, "link") as backup_temporary:
        assert backup_temporary.parent == folder and backup_temporary.name.startswith(".remote.yaml.v0.9.bak.")
        assert remove_interrupted_writes(folder) == [] and backup_temporary.exists()
    assert backup_temporary.exists()
    # The next run removes it first; killed in turn while writing the encrypted instance file (the old backup
    # encrypted by then), it leaves its own temporary file.
    with paused_run(config_dir, "replace") as instance_temporary:
        assert not backup_temporary.exists()
        assert instance_temporary.name.startswith(".remote.") and instance_temporary.name.endswith(".writing.yaml")
    assert instance_temporary.exists()
    assert PLAINTEXT in (folder / "remote.yaml").read_text()  # neither run got as far as the instance file

    result = subprocess.run(
        [sys.executable, "-m", "lollms_server", "--config", str(config_dir), "encrypt-secrets"],
        env=environment(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert f"{instance_temporary}: removed (left by an interrupted write)" in result.stderr
    assert not instance_temporary.exists()
    assert all(os.path.lexists(decoy) for decoy in decoys) and elsewhere.read_text() == "mine: true\n"
    assert not (folder / "remote.yaml.v0.9.bak").exists()
    restored = SecretCipher(key).decrypt_bytes((folder / "remote.yaml.v0.9.bak.fernet").read_bytes()).decode()
    assert f"api_key: {PLAINTEXT}" in restored and "__version__: '0.9'" in restored
    assert yaml.safe_load((folder / "remote.yaml").read_text())["api_key"].startswith(ENCRYPTED_PREFIX)
    in_clear = [p.name for p in folder.iterdir() if p.is_file() and PLAINTEXT.encode() in p.read_bytes()]
    assert in_clear == []
    assert sorted(p.name for p in folder.iterdir() if ".writing" in p.name) == sorted(d.name for d in decoys[1:])


def test_a_fernet_copy_a_killed_run_wrote_is_kept_and_a_different_one_refused(tmp_path: Path) -> None:
    """Killed between writing backup.fernet and removing the plaintext backup: the next run finishes the job; a
    .fernet of other content is never overwritten, and both stay for the operator."""
    from lollms_server.core.instance_secrets import encrypt_backup

    cipher = SecretCipher(generate_key())
    same, other = tmp_path / "a.yaml.v0.9.bak", tmp_path / "b.yaml.v0.9.bak"
    for path in (same, other):
        path.write_text(f"api_key: {PLAINTEXT}\n")
    (tmp_path / "a.yaml.v0.9.bak.fernet").write_bytes(cipher.encrypt_bytes(same.read_bytes()))
    (tmp_path / "b.yaml.v0.9.bak.fernet").write_bytes(cipher.encrypt_bytes(b"something else\n"))

    assert encrypt_backup(same, cipher) == tmp_path / "a.yaml.v0.9.bak.fernet" and not same.exists()
    from lollms_server.core.errors import ConfigError

    with pytest.raises(ConfigError, match="exists with another content"):
        encrypt_backup(other, cipher)
    assert other.exists() and cipher.decrypt_bytes((tmp_path / "b.yaml.v0.9.bak.fernet").read_bytes()) == (
        b"something else\n"
    )


def test_a_migration_with_a_key_writes_an_encrypted_backup(tmp_path: Path) -> None:
    """Once there is a key, a start that migrates an instance file keeps no plaintext copy of it."""
    config_dir = tmp_path / "conf"
    folder = config_dir / "bindings"
    folder.mkdir(parents=True)
    write_binding_type(config_dir / "pb")
    key = generate_key()
    original = f"__version__: '0.9'\ntype: tcp_binding\napi_key: {PLAINTEXT}\n"
    (folder / "remote.yaml").write_text(original)
    manager = BindingManager(load_main_config(write_main_config(config_dir, key)), ResourceManager())

    async def start_and_stop() -> None:
        await manager.start()
        await manager.stop()

    asyncio.run(start_and_stop())
    assert sorted(p.name for p in folder.iterdir()) == ["remote.yaml", "remote.yaml.v0.9.bak.fernet"]
    assert SecretCipher(key).decrypt_bytes((folder / "remote.yaml.v0.9.bak.fernet").read_bytes()) == original.encode()
