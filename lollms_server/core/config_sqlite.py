"""Reading ConfigGuard's SQLite config format without ever writing to the file.

ConfigGuard's own handler opens the file read-write, switches it to WAL mode and creates its table, so
merely reading a config (even ``check-config``) would change it. We read the bytes already checked and
size-capped, in memory: the file on disk is never opened by SQLite.
"""

from __future__ import annotations

import json
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

from lollms_server.core.errors import ConfigError

_VERSION_KEY = "__version__"
_SCHEMA_KEY = "__schema__"
# Header bytes 18-19: file format write/read versions; 2 means WAL, which an in-memory copy cannot use.
_FORMAT_VERSION_OFFSETS = (18, 19)


def _unflatten(path: Path, flat: dict[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for dotted in sorted(flat):
        node = values
        parts = dotted.split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError([f"{path}: key '{dotted}' conflicts with the value stored under '{part}'"])
            node = child
        if isinstance(node.get(parts[-1]), dict):
            raise ConfigError([f"{path}: key '{dotted}' conflicts with the section of the same name"])
        node[parts[-1]] = flat[dotted]
    return values


def read_rows(image: bytes, *, in_memory: bool = True) -> list[tuple[Any, Any]]:
    """The rows of the ``config`` table of a database image, read in memory (Python 3.11+) or, without
    ``Connection.deserialize``, from a copy in a private temporary folder."""
    deserialize = getattr(sqlite3.Connection, "deserialize", None)  # Python 3.11+
    if in_memory and deserialize is not None:
        connection = sqlite3.connect(":memory:")
        try:
            deserialize(connection, image)
            return connection.execute("SELECT key, value FROM config").fetchall()
        finally:
            connection.close()
    with tempfile.TemporaryDirectory(prefix="lollms-config-") as folder:  # created 0700
        copy = Path(folder) / "config.db"
        copy.write_bytes(image)
        connection = sqlite3.connect(copy)
        try:
            return connection.execute("SELECT key, value FROM config").fetchall()
        finally:
            connection.close()


def load_sqlite_config(path: Path, data: bytes) -> tuple[str | None, dict[str, Any]]:
    """The version stamp and the values of the SQLite config file whose content is ``data``."""
    image = bytearray(data)
    for offset in _FORMAT_VERSION_OFFSETS:
        if len(image) > offset and image[offset] == 2:
            image[offset] = 1
    try:
        rows = read_rows(bytes(image))
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return None, {}
        raise ConfigError([f"{path}: cannot be parsed: {exc}"]) from exc
    except sqlite3.Error as exc:
        raise ConfigError([f"{path}: cannot be parsed: {exc}"]) from exc
    version: str | None = None
    flat: dict[str, Any] = {}
    for key, blob in rows:
        try:
            value = json.loads(blob if blob is not None else b"null")
        except (ValueError, TypeError) as exc:
            raise ConfigError([f"{path}: cannot be parsed: the value of '{key}' is not JSON ({exc})"]) from exc
        if key == _VERSION_KEY:
            version = value if isinstance(value, str) else None
        elif key != _SCHEMA_KEY:
            flat[str(key)] = value
    return version, _unflatten(path, flat)
