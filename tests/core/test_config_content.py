"""What a config file holds: empty files, duplicate keys, a non-mapping top level, huge files, non-databases.

Every case is one line naming the file, and the file is left as it was.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import os
import sqlite3
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from lollms_server.core.config import load_main_config
from lollms_server.core.config_content import MAX_CONFIG_VALUES
from lollms_server.core.config_files import load_config_file, write_raw
from lollms_server.core.config_paths import MAX_CONFIG_BYTES
from lollms_server.core.config_schema import MAIN_SCHEMA_VERSION
from lollms_server.core.config_sqlite import read_rows
from lollms_server.core.errors import ConfigError
from tests.helpers import TCP_INSTANCE_SCHEMA

T = TypeVar("T")
KEYS = "security:\n  allowed_api_keys: [k-1234567890abcdef]\n"


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def refused(path: Path) -> str:
    """The single problem line of loading ``path`` as the main config; the file must be untouched."""
    before = digest(path)
    with pytest.raises(ConfigError) as caught:
        load_main_config(path)
    assert len(caught.value.problems) == 1, caught.value.problems
    assert digest(path) == before
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no backup, no temporary, no journal
    return caught.value.problems[0]


NO_KEYS = "security.allowed_api_keys: not set in the file"
_WATCHED: list[tuple[str, list[str]]] = []  # (path, its opens) of the files_opened() blocks running


def _audit(event: str, args: tuple[object, ...]) -> None:
    if event == "open" and _WATCHED and isinstance(args[0], (str, bytes, os.PathLike)):
        path, opened = _WATCHED[-1]
        if os.fsdecode(args[0]) == path:
            opened.append(path)


sys.addaudithook(_audit)  # audit hooks cannot be removed: this one does nothing outside files_opened()


@contextlib.contextmanager
def files_opened(path: Path) -> Iterator[list[str]]:
    """The opens of ``path`` (by any code of this process) during the block."""
    opened: list[str] = []
    _WATCHED.append((str(path), opened))
    try:
        yield opened
    finally:
        _WATCHED.pop()


def finishes(call: Callable[[], T], within: float = 300.0) -> T:
    """``call()``'s result; a failure (instead of a hang) if it runs past a bound far above its normal time."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        future = pool.submit(call)
        try:
            return future.result(timeout=within)
        except concurrent.futures.TimeoutError:
            pytest.fail(f"still running after {within:g}s", pytrace=False)


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("main_config.yaml", "", "holds no settings"),
        ("main_config.yaml", "# all settings commented out\n# server:\n#   port: 9601\n", "holds no settings"),
        ("main_config.yaml", "\n   \n", "holds no settings"),
        ("main_config.toml", "# nothing here\n", "holds no settings"),
        ("main_config.db", "", "holds no settings"),
        # An explicit empty mapping is a statement, but not one that turns authentication off.
        ("main_config.yaml", "{}\n", NO_KEYS),
        ("main_config.yaml", "__version__: 1.0.0\n", NO_KEYS),
        ("main_config.json", "{}", NO_KEYS),
        ("main_config.json", '{"__version__": "1.0.0"}', NO_KEYS),
    ],
)
def test_an_empty_file_is_an_error_not_defaults_without_authentication(
    tmp_path: Path, name: str, content: str, expected: str
) -> None:
    path = tmp_path / name
    path.write_text(content)
    assert expected in refused(path)


def test_authentication_is_off_only_when_the_file_says_so(tmp_path: Path) -> None:
    path = tmp_path / "main_config.yaml"
    path.write_text("server:\n  port: 9700\n")
    line = refused(path)
    assert "security.allowed_api_keys: not set in the file" in line and "allowed_api_keys: []" in line
    path.write_text("server:\n  port: 9700\nsecurity:\n  allowed_api_keys: []\n")
    assert load_main_config(path).api_keys == []


def test_an_old_file_without_keys_is_not_migrated_into_authentication_off(tmp_path: Path) -> None:
    path = tmp_path / "main_config.yaml"
    path.write_text("__version__: 0.3.2\nserver:\n  port: 9700\n")
    assert "security.allowed_api_keys: not set in the file" in refused(path)


def test_duplicate_yaml_keys_name_the_key_and_the_lines(tmp_path: Path) -> None:
    path = tmp_path / "main_config.yaml"
    path.write_text(f"{KEYS}server:\n  port: 9601\n  host: 0.0.0.0\n  port: 9700\n")
    line = refused(path)
    assert line.startswith(f"{path}: duplicate key 'server.port' on lines 4 and 6")


def test_duplicate_sections_are_reported_too(tmp_path: Path) -> None:
    path = tmp_path / "main_config.yaml"
    path.write_text(f"{KEYS}server: {{}}\nsecurity:\n  allowed_api_keys: []\n")
    assert "duplicate key 'security' on lines 1 and 4" in refused(path)


def test_duplicate_json_keys_are_reported(tmp_path: Path) -> None:
    path = tmp_path / "main_config.json"
    path.write_text('{"security": {"allowed_api_keys": [], "allowed_api_keys": ["k-1234567890abcdef"]}}')
    assert "duplicate key 'security.allowed_api_keys'" in refused(path)


def test_duplicate_toml_keys_are_refused_by_the_parser(tmp_path: Path) -> None:
    path = tmp_path / "main_config.toml"
    path.write_text('[security]\nallowed_api_keys = []\nallowed_api_keys = ["k-1234567890abcdef"]\n')
    assert "cannot be parsed" in refused(path)


def test_yaml_merge_keys_are_not_duplicates(tmp_path: Path) -> None:
    path = tmp_path / "main_config.yaml"
    path.write_text(f"{KEYS}x-base: &base\n  port: 9601\nserver:\n  <<: *base\n  host: 0.0.0.0\n")
    with pytest.raises(ConfigError, match="x-base: unknown option"):  # reaches validation: no duplicate reported
        load_main_config(path)


@pytest.mark.parametrize(
    ("name", "content", "found"),
    [
        ("main_config.yaml", "- server\n- port\n", "found a list"),
        ("main_config.yaml", "just some words\n", "found a single value"),
        ("main_config.json", "[1, 2]", "found a list"),
        ("main_config.json", "null", "found nothing"),
        ("main_config.json", '"text"', "found a single value (str)"),
    ],
)
def test_the_top_level_must_be_a_mapping(tmp_path: Path, name: str, content: str, found: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    line = refused(path)
    assert "the top level must be a mapping of settings" in line and found in line


@pytest.mark.parametrize("content", [b"hello, I am not a database\n", b"\x00" * 4096])
def test_an_sqlite_file_that_is_not_a_database(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "main_config.sqlite"
    path.write_bytes(content)
    assert "is not an SQLite database" in refused(path)


def test_an_sqlite_database_without_our_table_is_not_written_to(tmp_path: Path) -> None:
    path = tmp_path / "main_config.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE other (x)")
    connection.close()
    assert "holds no settings" in refused(path)


def test_a_huge_file_is_refused_at_once_without_being_read(tmp_path: Path) -> None:
    path = tmp_path / "main_config.yaml"
    with path.open("wb") as handle:  # sparse: 200 MB that take no disk space
        handle.write(KEYS.encode())
        handle.truncate(200 * 1024 * 1024)
    line = refused(path)
    assert "is 200.0 MB; config files are limited to 4.0 MB" in line
    with files_opened(path) as opened:
        with pytest.raises(ConfigError):
            load_main_config(path)
    assert opened == []  # the cap is checked on its size: the file is not even opened


def test_a_file_just_under_the_cap_is_read(tmp_path: Path) -> None:
    path = tmp_path / "main_config.yaml"
    padding = MAX_CONFIG_BYTES - len(KEYS) - 1
    path.write_text(KEYS + "#" * (padding - 1) + "\n")
    assert path.stat().st_size <= MAX_CONFIG_BYTES
    assert load_main_config(path).api_keys == ["k-1234567890abcdef"]


def test_a_yaml_alias_bomb_is_refused(tmp_path: Path) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]  # 10**9 values
    path = tmp_path / "main_config.yaml"
    path.write_text(KEYS + "\n".join(lines) + "\n")
    # Refused after counting MAX_CONFIG_VALUES of them, not after walking 10**9 (which would not end in hours:
    # the bound below turns that into a failure, however slow the machine).
    assert f"holds more than {MAX_CONFIG_VALUES:,} values" in finishes(lambda: refused(path))


def test_deep_nesting_is_a_parse_error_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "main_config.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    assert "cannot be parsed" in refused(path)


def test_instance_files_go_through_the_same_checks(tmp_path: Path) -> None:
    path = tmp_path / "remote.yaml"
    path.write_text("type: tcp_binding\nport: 9\nport: 10\n")
    with pytest.raises(ConfigError, match=r"duplicate key 'port' on lines 2 and 3"):
        load_config_file(path, TCP_INSTANCE_SCHEMA)
    path.write_text("# nothing yet\n")
    with pytest.raises(ConfigError, match="holds no settings"):
        load_config_file(path, TCP_INSTANCE_SCHEMA)
    path.write_text("{}\n")  # an explicit empty mapping: every setting at its default, as the operator says
    assert load_config_file(path, TCP_INSTANCE_SCHEMA).values["port"] == 9


def test_reading_an_sqlite_config_never_writes_to_it(tmp_path: Path) -> None:
    path = tmp_path / "main_config.db"
    write_raw(path, MAIN_SCHEMA_VERSION, {"security": {"allowed_api_keys": []}, "server": {"port": 9700}})
    before = digest(path)
    assert load_main_config(path).port == 9700
    assert digest(path) == before and [p.name for p in tmp_path.iterdir()] == ["main_config.db"]


def test_sqlite_rows_read_the_same_without_in_memory_databases(tmp_path: Path) -> None:
    path = tmp_path / "main_config.db"
    write_raw(path, MAIN_SCHEMA_VERSION, {"security": {"allowed_api_keys": ["k-1234567890abcdef"]}})
    image = bytearray(path.read_bytes())
    image[18:20] = b"\x01\x01"  # as load_sqlite_config hands it over: not WAL
    assert read_rows(bytes(image), in_memory=False) == read_rows(bytes(image))
