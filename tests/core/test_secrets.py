"""Per-field secret encryption of binding instance files: round trip, wrong/missing key, in-place command."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import yaml

from lollms_server.cli import main as cli_main
from lollms_server.core.binding_manager import BindingManager, InstanceState
from lollms_server.core.config_files import write_raw
from lollms_server.core.config_schema import MAIN_SCHEMA_VERSION
from lollms_server.core.instance_secrets import encrypt_instance_secrets
from lollms_server.core.resource_manager import ResourceManager
from lollms_server.core.secrets import ENCRYPTED_PREFIX, SecretCipher, generate_key
from tests.helpers import make_config, write_binding_type, write_instance

PLAINTEXT = "sk-live-very-secret-value-42"


@pytest.fixture(autouse=True)
def no_key_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The key in force is the one each test configures."""
    monkeypatch.delenv("LOLLMS_ENCRYPTION_KEY", raising=False)


def setup_instance(tmp_path: Path, key: str | None, ext: str = "yaml") -> tuple:
    config = make_config(
        tmp_path,
        security={"encryption_key": key},
        bindings_map={"remote": "tcp_binding"},
    )
    write_binding_type(config.paths.bindings_folder)
    path = write_instance(config, "remote", {"type": "tcp_binding", "port": 9, "api_key": PLAINTEXT}, ext="yaml")
    if ext != "yaml":
        values = yaml.safe_load(path.read_text())
        path.unlink()
        path = path.with_suffix(f".{ext}")
        write_raw(path, "1.0", values)
    return config, path


async def started(config) -> BindingManager:  # type: ignore[no-untyped-def]
    manager = BindingManager(config, ResourceManager())
    await manager.start()
    await manager.stop()
    return manager


def files_containing(folder: Path, needle: str) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and needle.encode() in p.read_bytes()]


@pytest.mark.parametrize("ext", ["yaml", "toml", "json", "db"])
async def test_encrypt_command_then_load_round_trip(tmp_path: Path, ext: str) -> None:
    key = generate_key()
    config, path = setup_instance(tmp_path, key, ext)

    reports, problems = encrypt_instance_secrets(config)

    assert problems == [] and reports[0].encrypted_fields == ["api_key"]
    assert files_containing(tmp_path, PLAINTEXT) == []  # no plaintext anywhere on disk, backup included
    assert reports[0].backup is not None and reports[0].backup.exists()
    assert SecretCipher(key).decrypt_bytes(reports[0].backup.read_bytes())  # the backup is restorable
    manager = await started(config)
    instance = manager.instances["remote"]
    assert instance.binding is not None and instance.binding.config["api_key"] == PLAINTEXT
    # A second run finds nothing left to encrypt and writes nothing.
    before = path.read_bytes()
    reports, _ = encrypt_instance_secrets(config)
    assert reports[0].encrypted_fields == [] and path.read_bytes() == before


async def test_wrong_key_is_a_clear_error_for_that_instance(tmp_path: Path) -> None:
    config, path = setup_instance(tmp_path, generate_key())
    encrypt_instance_secrets(config)
    other = make_config(tmp_path, security={"encryption_key": generate_key()}, bindings_map={"remote": "tcp_binding"})

    instance = (await started(other)).instances["remote"]

    assert instance.state is InstanceState.ERROR
    assert "api_key" in instance.reason and "cannot be decrypted with the configured encryption key" in instance.reason
    assert instance.binding is None


async def test_missing_key_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config, _ = setup_instance(tmp_path, generate_key())
    encrypt_instance_secrets(config)
    monkeypatch.delenv("LOLLMS_ENCRYPTION_KEY", raising=False)
    keyless = make_config(tmp_path, bindings_map={"remote": "tcp_binding"})

    instance = (await started(keyless)).instances["remote"]

    assert instance.state is InstanceState.ERROR
    assert "encrypted but no encryption key is set" in instance.reason


async def test_environment_key_overrides_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = generate_key()
    config, path = setup_instance(tmp_path, None)
    monkeypatch.setenv("LOLLMS_ENCRYPTION_KEY", key)
    encrypt_instance_secrets(config)
    assert yaml.safe_load(path.read_text())["api_key"].startswith(ENCRYPTED_PREFIX)
    instance = (await started(config)).instances["remote"]
    assert instance.binding is not None and instance.binding.config["api_key"] == PLAINTEXT


def test_cli_encrypt_secrets_and_decrypt_backup(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key = generate_key()
    config_dir = tmp_path / "conf"
    write_raw(
        config_dir / "main_config.yaml",
        MAIN_SCHEMA_VERSION,
        {
            "security": {"encryption_key": key, "allowed_api_keys": ["k-123456789012345"]},
            "bindings_map": {"remote": "tcp_binding"},
            "paths": {"bindings_folder": "personal_bindings"},
        },
    )
    write_binding_type(config_dir / "personal_bindings")
    instance_file = config_dir / "bindings" / "remote.yaml"
    instance_file.parent.mkdir()
    original = yaml.safe_dump({"type": "tcp_binding", "api_key": PLAINTEXT})
    instance_file.write_text(original)

    assert cli_main(["encrypt-secrets", "--config", str(config_dir)]) == 0
    assert PLAINTEXT not in instance_file.read_text()
    backup = next(config_dir.glob("bindings/remote.yaml.plaintext*.bak.fernet"))
    restored = tmp_path / "restored.yaml"
    assert cli_main(["decrypt-file", str(backup), str(restored), "--config", str(config_dir)]) == 0
    assert restored.read_text() == original
    assert PLAINTEXT not in capsys.readouterr().err


def test_encrypt_refuses_a_broken_instance_file(tmp_path: Path) -> None:
    config, path = setup_instance(tmp_path, generate_key())
    path.write_text(yaml.safe_dump({"type": "tcp_binding", "api_key": PLAINTEXT, "port": "not-a-port"}))
    before = path.read_bytes()
    reports, problems = encrypt_instance_secrets(config)
    assert reports == [] and "port" in problems[0]
    assert path.read_bytes() == before


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_encrypt_secrets_keeps_a_private_file_private(tmp_path: Path) -> None:
    config, path = setup_instance(tmp_path, generate_key())
    path.chmod(0o600)
    reports, problems = encrypt_instance_secrets(config)
    assert problems == [] and reports[0].encrypted_fields == ["api_key"]
    assert mode(path) == 0o600
    assert reports[0].backup is not None and mode(reports[0].backup) == 0o600


def cli_config(tmp_path: Path, key: str) -> Path:
    config_dir = tmp_path / "conf"
    write_raw(
        config_dir / "main_config.yaml",
        MAIN_SCHEMA_VERSION,
        {"security": {"encryption_key": key, "allowed_api_keys": ["k-123456789012345"]}},
    )
    return config_dir


def test_decrypt_file_writes_privately_and_keeps_an_existing_mode(tmp_path: Path) -> None:
    key = generate_key()
    config_dir = cli_config(tmp_path, key)
    backup = tmp_path / "remote.yaml.plaintext.bak.fernet"
    backup.write_bytes(SecretCipher(key).encrypt_bytes(f"api_key: {PLAINTEXT}\n".encode()))
    fresh, existing = tmp_path / "fresh.yaml", tmp_path / "existing.yaml"
    existing.write_text("old: 1\n")
    existing.chmod(0o640)

    for output in (fresh, existing):
        assert cli_main(["decrypt-file", str(backup), str(output), "--config", str(config_dir)]) == 0
        assert PLAINTEXT in output.read_text()
    assert mode(fresh) == 0o600 and mode(existing) == 0o640


def test_decrypt_file_problems_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config_dir = cli_config(tmp_path, generate_key())
    missing = tmp_path / "nowhere.bak.fernet"
    assert cli_main(["decrypt-file", str(missing), str(tmp_path / "out.yaml"), "--config", str(config_dir)]) == 2
    assert capsys.readouterr().err.strip() == f"{missing}: No such file or directory"
    garbage = tmp_path / "garbage.bak.fernet"
    garbage.write_bytes(b"not a fernet token")
    assert cli_main(["decrypt-file", str(garbage), str(tmp_path / "out.yaml"), "--config", str(config_dir)]) == 2
    assert "cannot be decrypted with the configured key" in capsys.readouterr().err
    assert not (tmp_path / "out.yaml").exists()


def test_a_malformed_key_is_one_line_not_a_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config_dir = cli_config(tmp_path, "not-a-fernet-key")
    assert cli_main(["encrypt-secrets", "--config", str(config_dir)]) == 2
    assert "not a valid Fernet key" in capsys.readouterr().err
