"""Reading and writing ConfigGuard files strictly: every problem reported, nothing rewritten silently.

ConfigGuard provides the formats (YAML, TOML, JSON, SQLite), the schemas and the version stamps. Its own
``load`` replaces bad values with defaults and its constructor swallows load errors, so we read the raw
file through its storage handlers and validate it ourselves before any value is used.
"""

from __future__ import annotations

import copy
import logging
import os
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ascii_colors
from configguard import ConfigGuard
from configguard.exceptions import ConfigGuardError
from configguard.handlers import get_handler
from packaging.version import InvalidVersion, Version

from lollms_server.core.config_validation import DynamicSectionCheck, validate_values
from lollms_server.core.errors import ConfigError
from lollms_server.core.secrets import SecretCipher, decrypt_secret_fields

logger = logging.getLogger(__name__)

CONFIG_EXTENSIONS = (".yaml", ".yml", ".toml", ".json", ".db", ".sqlite", ".sqlite3")
_EXTRA_FOR_SUFFIX = {".toml": "toml", ".yaml": "yaml", ".yml": "yaml"}


def quiet_configguard() -> None:
    """ConfigGuard logs setting values at INFO/WARNING: keep it to errors so no secret reaches a log."""
    ascii_colors.getLogger("ConfigGuard").setLevel(ascii_colors.ERROR)


@dataclass
class LoadedFile:
    """A configuration file that passed strict validation."""

    path: Path
    values: dict[str, Any]
    file_version: str | None
    migrated_from: str | None = None
    backup_path: Path | None = None
    dropped_keys: list[str] = field(default_factory=list)


def find_config_file(folder: Path, stem: str) -> Path | None:
    """The single ``<stem>.<ext>`` in ``folder``; ConfigError when several formats exist."""
    matches = [folder / f"{stem}{ext}" for ext in CONFIG_EXTENSIONS if (folder / f"{stem}{ext}").is_file()]
    if len(matches) > 1:
        names = ", ".join(path.name for path in matches)
        raise ConfigError([f"{folder}: several files for '{stem}' ({names}); keep exactly one"])
    return matches[0] if matches else None


def read_raw(path: Path) -> tuple[str | None, dict[str, Any]]:
    """The version stamp and the values of a config file, exactly as stored."""
    quiet_configguard()
    if path.suffix.lower() not in CONFIG_EXTENSIONS:
        raise ConfigError([f"{path}: unsupported file type '{path.suffix}'; use one of {', '.join(CONFIG_EXTENSIONS)}"])
    if not path.is_file():
        raise ConfigError([f"{path}: file not found"])
    try:
        result = get_handler(path).load(path)
    except ImportError as exc:
        extra = _EXTRA_FOR_SUFFIX.get(path.suffix.lower(), "all")
        raise ConfigError(
            [f"{path}: reading this format needs a missing package ({exc}); pip install 'lollms-server[{extra}]'"]
        ) from exc
    except (ConfigGuardError, OSError, ValueError) as exc:
        raise ConfigError([f"{path}: cannot be parsed: {exc}"]) from exc
    return result.get("version"), dict(result.get("values") or {})


def _compare_versions(path: Path, file_version: str | None, schema_version: str) -> bool:
    """True when the file is older than the schema (it needs migrating); ConfigError when newer."""
    if file_version is None:
        return False
    try:
        found, current = Version(str(file_version)), Version(schema_version)
    except InvalidVersion as exc:
        raise ConfigError([f"{path}: __version__ = {file_version!r} is not a version number like 1.0.0"]) from exc
    if found > current:
        raise ConfigError(
            [
                f"{path}: __version__ = {file_version!r} is newer than this lollms_server understands "
                f"({schema_version}); upgrade lollms_server or restore an older copy of the file"
            ]
        )
    return found < current


def complete_values(schema: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """Validated values with every missing setting filled with its schema default."""
    quiet_configguard()
    guard = ConfigGuard(schema=dict(schema))
    guard.import_config(values, ignore_unknown=True)
    return guard.get_config_dict()


def write_raw(path: Path, version: str, values: Mapping[str, Any]) -> None:
    """Write exactly ``values`` with a version stamp, atomically: a crash never leaves half a file."""
    quiet_configguard()
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.stem}.writing{path.suffix}")
    temporary.unlink(missing_ok=True)
    try:
        get_handler(temporary).save(
            temporary, data={"instance_version": version, "config_values": dict(values)}, mode="values"
        )
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_config_file(path: Path, schema: Mapping[str, Any], values: Mapping[str, Any]) -> None:
    """Write ``values`` completed with the schema's defaults and stamped with the schema's version."""
    write_raw(path, str(schema.get("__version__", "0.0.0")), complete_values(schema, values))


def backup_file(path: Path, tag: str, protect_with: SecretCipher | None = None) -> Path:
    """Copy ``path`` next to itself before it is rewritten.

    With ``protect_with`` the copy is Fernet-encrypted as a whole (``.bak.fernet``), so a backup of a
    file holding plaintext secrets does not leave them on disk; ``lollms-server decrypt-file`` restores it.
    """
    suffix = ".bak.fernet" if protect_with else ".bak"
    backup = path.with_name(f"{path.name}.{tag}{suffix}")
    if backup.exists():
        backup = path.with_name(f"{path.name}.{tag}.{time.strftime('%Y%m%d-%H%M%S')}{suffix}")
    if protect_with:
        backup.write_bytes(protect_with.encrypt_bytes(path.read_bytes()))
    else:
        shutil.copy2(path, backup)
    return backup


def load_config_file(
    path: Path,
    schema: Mapping[str, Any],
    *,
    cipher: SecretCipher | None = None,
    dynamic_checks: Mapping[str, DynamicSectionCheck] | None = None,
    migrate: bool = True,
) -> LoadedFile:
    """Load and strictly validate one config file; migrate it (after a backup) when it is older."""
    file_version, raw_values = read_raw(path)
    schema_version = str(schema.get("__version__", "0.0.0"))
    needs_migration = _compare_versions(path, file_version, schema_version)

    values = copy.deepcopy(raw_values)  # decryption must not touch what migration writes back
    problems = decrypt_secret_fields(values, schema, cipher)
    found, unknown = validate_values(
        values, schema, dynamic_checks=dynamic_checks, unknown_keys_allowed=needs_migration
    )
    problems += found
    if problems:
        raise ConfigError([f"{path}: {problem}" for problem in problems])

    loaded = LoadedFile(path=path, values=complete_values(schema, values), file_version=file_version)
    if needs_migration:
        loaded.migrated_from = file_version
        loaded.dropped_keys = unknown
        if migrate:
            # Secrets are written back exactly as stored (still encrypted where they were).
            loaded.backup_path = backup_file(path, f"v{file_version}")
            write_config_file(path, schema, raw_values)
            logger.warning(
                "Migrated %s from version %s to %s (backup: %s%s)",
                path,
                file_version,
                schema_version,
                loaded.backup_path.name,
                f"; dropped options no longer known: {', '.join(unknown)}" if unknown else "",
            )
    return loaded
