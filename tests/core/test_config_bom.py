"""A UTF-8 byte order mark (what Windows editors may write) is accepted on purpose in every config file: the
main config and instance files in each text format, the key file and a personality's config.yaml read exactly as
without it. A file that is not UTF-8 at all is refused in one line saying so."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lollms_server.core.api_keys import KeyFile
from lollms_server.core.config import load_main_config
from lollms_server.core.config_files import write_raw
from lollms_server.core.config_paths import UTF8_BOM
from lollms_server.core.config_schema import MAIN_SCHEMA_VERSION
from lollms_server.core.errors import ConfigError
from lollms_server.core.instance_files import check_instance_files
from lollms_server.core.personalities import load_personality
from tests.helpers import TEST_API_KEY, make_config, write_binding_type

MAIN_VALUES = {
    "security": {"allowed_api_keys": [TEST_API_KEY]},
    "server": {"port": 9641},
    "bindings_map": {"remote": "tcp_binding"},
}


def with_bom(path: Path) -> None:
    path.write_bytes(UTF8_BOM + path.read_bytes())


@pytest.mark.parametrize("ext", ["yaml", "json", "toml"])
def test_a_main_config_with_a_bom_reads_as_without(tmp_path: Path, ext: str) -> None:
    plain, marked = tmp_path / "plain" / f"main_config.{ext}", tmp_path / "marked" / f"main_config.{ext}"
    for path in (plain, marked):
        write_raw(path, MAIN_SCHEMA_VERSION, MAIN_VALUES)
    with_bom(marked)
    assert marked.read_bytes().startswith(UTF8_BOM)
    config = load_main_config(marked, migrate=False)
    assert config.values == {**load_main_config(plain, migrate=False).values, "paths": config.values["paths"]}
    assert config.port == 9641 and config.bindings_map == {"remote": "tcp_binding"}


@pytest.mark.parametrize("ext", ["yaml", "json", "toml"])
def test_an_instance_file_with_a_bom_is_checked_as_without(tmp_path: Path, ext: str) -> None:
    config = make_config(tmp_path, bindings_map={"remote": "tcp_binding"})
    write_binding_type(config.paths.bindings_folder)
    path = config.paths.instance_bindings_folder / f"remote.{ext}"
    write_raw(path, "1.0", {"type": "tcp_binding", "port": 9})
    with_bom(path)
    result = check_instance_files(config)
    assert result.problems == [] and result.checked == 1


def test_a_key_file_with_a_bom_reads_as_without(tmp_path: Path) -> None:
    path = tmp_path / "api_keys.yaml"
    keys = KeyFile(path)
    keys.create("alice")
    keys.save()
    with_bom(path)
    assert list(KeyFile.load(path).records) == ["alice"]


def test_a_key_file_that_is_not_utf8_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "api_keys.yaml"
    path.write_bytes(b"keys:\n- name: \xff\n")
    with pytest.raises(ConfigError) as caught:
        KeyFile.load(path)
    assert caught.value.problems == [f"{path}: cannot be parsed: not UTF-8 text (byte 14); save it as UTF-8"]


def test_a_main_config_that_is_not_utf8_names_the_byte_after_a_bom(tmp_path: Path) -> None:
    path = tmp_path / "main_config.json"
    path.write_bytes(UTF8_BOM + b'{"a": "\xff"}')
    with pytest.raises(ConfigError) as caught:
        load_main_config(path, migrate=False)
    assert caught.value.problems == [f"{path}: cannot be parsed: not UTF-8 text (byte 10); save it as UTF-8"]


def test_a_personality_config_with_a_bom_reads_as_without(tmp_path: Path) -> None:
    folder = tmp_path / "greeter"
    folder.mkdir()
    (folder / "config.yaml").write_bytes(
        UTF8_BOM + yaml.safe_dump({"name": "Greeter", "personality_conditioning": "Say hello."}).encode()
    )
    personality = load_personality(folder, "greeter", "personal")
    assert personality.config.name == "Greeter"
