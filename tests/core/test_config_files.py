"""Main config: formats, strict errors that leave the file untouched, migration with backup, defaults."""

from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path

import pytest
import yaml

from lollms_server.core.api_keys import ApiKeyVerifier
from lollms_server.core.config import (
    MAIN_SCHEMA,
    create_default_config,
    load_main_config,
    locate_main_config,
)
from lollms_server.core.config_files import load_config_file, write_config_file, write_raw
from lollms_server.core.config_schema import MAIN_SCHEMA_VERSION
from lollms_server.core.errors import ConfigError
from tests.helpers import TCP_INSTANCE_SCHEMA

FORMATS = ["yaml", "toml", "json", "db"]

SAMPLE = {
    "server": {"host": "0.0.0.0", "port": 9700, "allowed_origins": ["http://ui.example:8080"]},
    "security": {"allowed_api_keys": ["k1-aaaaaaaaaaaaaaaa", "sha256:" + "a" * 64]},
    "defaults": {"ttt_binding": "local", "default_context_size": 8192},
    "bindings_map": {"local": "llamacpp_binding", "remote-1": "openai_binding"},
    "resource_manager": {"gpu_strategy": "simple_lock", "queue_timeout": 5},
    "webui": {"enable_ui": True},
    "logging": {"log_level": "DEBUG"},
    "personalities_config": {"python_builder_executor": {"enabled": False}},
}


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("ext", FORMATS)
def test_round_trip_in_every_format(tmp_path: Path, ext: str) -> None:
    path = tmp_path / f"main_config.{ext}"
    write_config_file(path, MAIN_SCHEMA, SAMPLE)
    config = load_main_config(path)
    for section, values in SAMPLE.items():
        for key, value in values.items():
            assert config.values[section][key] == value, (section, key)
    assert config.values["server"]["workers"] == 1  # untouched keys carry their defaults
    assert config.path == path


def write_yaml(path: Path, values: dict) -> Path:
    """A main config stating its keys (as every main config file must) plus ``values``."""
    values = {**values, "security": {"allowed_api_keys": ["k1-aaaaaaaaaaaaaaaa"], **values.get("security", {})}}
    path.write_text(yaml.safe_dump({"__version__": MAIN_SCHEMA_VERSION, **values}), encoding="utf-8")
    return path


BAD_FILES = [
    # (values, expected fragments of the single problem line)
    ({"server": {"port": "ninety"}}, ["server.port", "'ninety'", "an integer between 1 and 65535"]),
    ({"server": {"port": 70000}}, ["server.port", "70000", "between 1 and 65535"]),
    ({"resource_manager": {"gpu_strategy": "fastest"}}, ["gpu_strategy", "'fastest'", "'semaphore'"]),
    ({"server": {"hots": "127.0.0.1"}}, ["server.hots", "unknown option", "host"]),
    ({"webui": {"enable_ui": "yes"}}, ["webui.enable_ui", "true or false"]),
    ({"server": {"allowed_origins": "http://a"}}, ["server.allowed_origins", "a list of strings"]),
    ({"bindings_map": {"../evil": "x_binding"}}, ["bindings_map.../evil", "invalid instance name"]),
    ({"defaults": {"ttt_binding": "ghost"}}, ["defaults.ttt_binding", "'ghost'", "not a key of bindings_map"]),
    ({"server": {"allowed_origins": ["null"]}}, ["allowed_origins", "'null'"]),
    ({"personalities_config": {"x": {"enabled": "no"}}}, ["personalities_config.x.enabled", "true or false"]),
]


@pytest.mark.parametrize(("values", "fragments"), BAD_FILES)
def test_bad_value_is_reported_and_file_untouched(tmp_path: Path, values: dict, fragments: list[str]) -> None:
    path = write_yaml(tmp_path / "main_config.yaml", values)
    before = digest(path)
    with pytest.raises(ConfigError) as caught:
        load_main_config(path)
    assert len(caught.value.problems) == 1
    line = caught.value.problems[0]
    assert line.startswith(str(path))
    for fragment in fragments:
        assert fragment in line
    assert digest(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["main_config.yaml"]


def test_every_problem_is_listed_not_only_the_first(tmp_path: Path) -> None:
    path = write_yaml(tmp_path / "main_config.yaml", {"server": {"port": 0, "host": 5}, "webui": {"x": 1}})
    with pytest.raises(ConfigError) as caught:
        load_main_config(path)
    assert len(caught.value.problems) == 3


def test_secret_values_are_masked_in_errors(tmp_path: Path) -> None:
    path = write_yaml(tmp_path / "main_config.yaml", {"security": {"encryption_key": 123456789}})
    with pytest.raises(ConfigError) as caught:
        load_main_config(path)
    assert "123456789" not in str(caught.value)
    assert "security.encryption_key = '***'" in str(caught.value)


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("main_config.yaml", "server:\n  port: [unclosed\n"),
        ("main_config.json", '{"server": {"port": 9601,}}'),
        ("main_config.toml", "[server\nport = 1\n"),
        ("main_config.yaml", "- just\n- a list\n"),
    ],
)
def test_syntax_errors_are_reported_and_file_untouched(tmp_path: Path, name: str, content: str) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_main_config(path)
    assert caught.value.problems[0].startswith(f"{path}: cannot be parsed")
    assert path.read_text(encoding="utf-8") == content


def test_newer_schema_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "main_config.yaml"
    path.write_text(yaml.safe_dump({"__version__": "99.0.0", "server": {"port": 1234}}), encoding="utf-8")
    before = digest(path)
    with pytest.raises(ConfigError, match="newer than this lollms_server understands"):
        load_main_config(path)
    assert digest(path) == before


def test_older_version_migrates_after_backup(tmp_path: Path) -> None:
    path = tmp_path / "main_config.json"
    old = {
        "__version__": "0.3.2",
        "server": {"host": "0.0.0.0", "port": 9602},
        "security": {"allowed_api_keys": ["old-key-123456789"]},
        "bindings_map": {"mine": "ollama_binding"},
        "removed_section": {"whatever": 1},
    }
    original = json.dumps(old, indent=2)
    path.write_text(original, encoding="utf-8")

    config = load_main_config(path)

    backups = list(tmp_path.glob("main_config.json.v0.3.2*.bak"))
    assert len(backups) == 1 and backups[0].read_text(encoding="utf-8") == original
    migrated = json.loads(path.read_text(encoding="utf-8"))
    assert migrated["__version__"] == MAIN_SCHEMA_VERSION
    assert migrated["server"]["port"] == 9602 and migrated["server"]["workers"] == 1
    assert migrated["resource_manager"]["gpu_strategy"] == "semaphore"  # new keys get defaults
    assert "removed_section" not in migrated
    assert config.bindings_map == {"mine": "ollama_binding"}
    # Loading again finds nothing left to migrate.
    load_main_config(path)
    assert len(list(tmp_path.glob("*.bak"))) == 1


def test_migration_with_a_bad_value_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "main_config.yaml"
    path.write_text(yaml.safe_dump({"__version__": "0.3.2", "server": {"port": -1}}), encoding="utf-8")
    before = digest(path)
    with pytest.raises(ConfigError):
        load_main_config(path)
    assert digest(path) == before
    assert not list(tmp_path.glob("*.bak"))


def test_relative_paths_resolve_against_the_config_folder(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "main_config.yaml"
    write_config_file(path, MAIN_SCHEMA, {"paths": {"models_folder": "../models", "bindings_folder": "/abs/b"}})
    config = load_main_config(path)
    assert config.paths.models_folder == (tmp_path / "models").resolve()
    assert config.paths.bindings_folder == Path("/abs/b")
    assert config.paths.instance_bindings_folder == (tmp_path / "conf" / "bindings").resolve()
    assert (config.paths.example_bindings_folder / "__init__.py").parent.name == "bindings"


def test_locate_main_config_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env_dir, cwd = tmp_path / "env", tmp_path / "cwd"
    for folder in (env_dir, cwd / "lollms_configs"):
        folder.mkdir(parents=True)
    write_raw(env_dir / "main_config.toml", MAIN_SCHEMA_VERSION, {})
    monkeypatch.delenv("LOLLMS_CONFIG_DIR", raising=False)
    assert locate_main_config(None, cwd=cwd) == (cwd / "lollms_configs" / "main_config.yaml").resolve()
    monkeypatch.setenv("LOLLMS_CONFIG_DIR", str(env_dir))
    assert locate_main_config(None, cwd=cwd) == (env_dir / "main_config.toml").resolve()
    explicit = tmp_path / "x" / "my.json"
    assert locate_main_config(str(explicit), cwd=cwd) == explicit.resolve()
    assert locate_main_config(str(env_dir), cwd=cwd) == (env_dir / "main_config.toml").resolve()


def test_two_main_configs_in_one_folder_is_an_error(tmp_path: Path) -> None:
    write_raw(tmp_path / "main_config.yaml", MAIN_SCHEMA_VERSION, {})
    write_raw(tmp_path / "main_config.json", MAIN_SCHEMA_VERSION, {})
    with pytest.raises(ConfigError, match="keep exactly one"):
        locate_main_config(str(tmp_path))


def test_default_config_turns_authentication_on(tmp_path: Path) -> None:
    path = tmp_path / "lollms_configs" / "main_config.yaml"
    api_key = create_default_config(path)
    text = path.read_text(encoding="utf-8")
    assert api_key not in text  # only its digest is stored
    config = load_main_config(path)
    assert config.host == "127.0.0.1"
    verifier = ApiKeyVerifier(config.api_keys)
    assert verifier.required and verifier.is_valid(api_key) and not verifier.is_valid(api_key + "x")
    with pytest.raises(ConfigError, match="refusing to overwrite"):
        create_default_config(path)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("original", [0o600, 0o644])
def test_migration_keeps_the_mode_and_its_backup_is_private(tmp_path: Path, original: int) -> None:
    path = tmp_path / "remote.yaml"
    path.write_text(yaml.safe_dump({"__version__": "0.9", "type": "tcp_binding", "api_key": "sk-plain-123456"}))
    path.chmod(original)

    loaded = load_config_file(path, TCP_INSTANCE_SCHEMA)

    assert loaded.migrated_from == "0.9" and loaded.backup_path is not None
    assert yaml.safe_load(path.read_text())["__version__"] == "1.0"
    assert mode(path) == original  # a 0600 file holding a plaintext key stays 0600
    assert mode(loaded.backup_path) == 0o600  # the copy of a plaintext key is never world-readable


def test_rewriting_a_file_keeps_its_mode(tmp_path: Path) -> None:
    path = tmp_path / "main_config.yaml"
    write_raw(path, MAIN_SCHEMA_VERSION, {"server": {"port": 1}})
    path.chmod(0o640)
    write_raw(path, MAIN_SCHEMA_VERSION, {"server": {"port": 2}})
    assert mode(path) == 0o640 and yaml.safe_load(path.read_text())["server"]["port"] == 2


def test_the_default_config_is_private_and_never_replaces_anything(tmp_path: Path) -> None:
    folder = tmp_path / "lollms_configs"
    create_default_config(folder / "main_config.yaml")
    assert mode(folder / "main_config.yaml") == 0o600  # it holds the key digests
    dangling = tmp_path / "other" / "main_config.yaml"
    dangling.parent.mkdir()
    dangling.symlink_to(tmp_path / "moved_away.yaml")
    with pytest.raises(ConfigError, match="already exists; refusing to overwrite it"):
        create_default_config(dangling)
    assert not (tmp_path / "moved_away.yaml").exists()


def test_check_only_loading_never_migrates(tmp_path: Path) -> None:
    path = write_yaml(tmp_path / "main_config.yaml", {})
    path.write_text(path.read_text().replace(MAIN_SCHEMA_VERSION, "0.3.2"))
    before = digest(path)
    config = load_main_config(path, migrate=False)
    assert config.pending_migration_from == "0.3.2"
    assert digest(path) == before and [p.name for p in tmp_path.iterdir()] == ["main_config.yaml"]
