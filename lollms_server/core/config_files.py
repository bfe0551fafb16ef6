"""Reading and writing ConfigGuard files strictly: every problem reported, nothing rewritten silently.

ConfigGuard provides the formats (YAML, TOML, JSON, SQLite), the schemas and the version stamps. Its own
``load`` replaces bad values with defaults and its constructor swallows load errors, so we read the raw
file through its storage handlers and validate it ourselves before any value is used.
"""

from __future__ import annotations

import copy
import logging
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

from lollms_server.core.atomic_files import atomic_path, atomic_write_bytes
from lollms_server.core.config_content import SQLITE_SUFFIXES, content_problems, no_settings
from lollms_server.core.config_paths import CONFIG_EXTENSIONS, find_config_file, read_config_bytes, without_bom
from lollms_server.core.config_sqlite import load_sqlite_config
from lollms_server.core.config_validation import DynamicSectionCheck, secret_paths, validate_values
from lollms_server.core.errors import ConfigError
from lollms_server.core.secrets import SecretCipher, decrypt_secret_fields, dotted_value

__all__ = [
    "CONFIG_EXTENSIONS",
    "LoadedFile",
    "backup_file",
    "complete_values",
    "find_config_file",
    "load_config_file",
    "quiet_configguard",
    "read_raw",
    "write_config_file",
    "write_raw",
]

logger = logging.getLogger(__name__)

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


class _CheckedContent(type(Path())):  # type: ignore[misc]
    """A path that answers with content already read and checked: a ConfigGuard handler (which reads through
    ``exists`` and ``read_bytes``) parses exactly what was checked, never a file changed since nor a BOM."""

    content: bytes

    @classmethod
    def of(cls, path: Path, content: bytes) -> _CheckedContent:
        checked = cls(path)
        checked.content = content
        return checked

    def exists(self, *args: Any, **kwargs: Any) -> bool:
        return True

    def read_bytes(self) -> bytes:
        return self.content


def read_raw(path: Path) -> tuple[str | None, dict[str, Any]]:
    """The version stamp and the values of a config file, exactly as stored."""
    quiet_configguard()
    data = read_config_bytes(path)
    if not data.strip():
        raise ConfigError([no_settings(path)])
    problems = content_problems(path, data)
    if problems:
        raise ConfigError(problems)
    if path.suffix.lower() in SQLITE_SUFFIXES:
        version, values = load_sqlite_config(path, data)  # ConfigGuard's handler would write to the file
        if version is None and not values:
            raise ConfigError([no_settings(path)])
        return version, values
    try:
        result = get_handler(path).load(_CheckedContent.of(path, without_bom(data)))
    except ImportError as exc:
        extra = _EXTRA_FOR_SUFFIX.get(path.suffix.lower(), "all")
        raise ConfigError(
            [f"{path}: reading this format needs a missing package ({exc}); pip install 'lollms-server[{extra}]'"]
        ) from exc
    except (ConfigGuardError, OSError, ValueError, RecursionError) as exc:
        raise ConfigError([f"{path}: cannot be parsed: {exc}"]) from exc
    version, values = result.get("version"), dict(result.get("values") or {})
    if version is None and not values and path.suffix.lower() == ".toml":  # TOML cannot write an empty table
        raise ConfigError([no_settings(path)])
    return version, values


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


def write_raw(
    path: Path, version: str, values: Mapping[str, Any], *, private: bool = True, exclusive: bool = False
) -> None:
    """Write exactly ``values`` with a version stamp, atomically; an existing file keeps its mode, a new
    one is ``0600`` unless ``private`` is false (a schema without secrets). ``exclusive``: never replace
    anything (``FileExistsError``)."""
    quiet_configguard()
    with atomic_path(path, private=private, exclusive=exclusive) as temporary:
        get_handler(temporary).save(
            temporary, data={"instance_version": version, "config_values": dict(values)}, mode="values"
        )


def write_config_file(
    path: Path, schema: Mapping[str, Any], values: Mapping[str, Any], *, exclusive: bool = False
) -> None:
    """Write ``values`` completed with the schema's defaults and stamped with the schema's version; a new
    file is ``0600`` when the schema has secret settings."""
    version, complete = str(schema.get("__version__", "0.0.0")), complete_values(schema, values)
    write_raw(path, version, complete, private=bool(secret_paths(schema)), exclusive=exclusive)


def backup_file(path: Path, tag: str, protect_with: SecretCipher | None = None) -> Path:
    """Copy ``path`` next to itself before it is rewritten; the copy is ``0600`` whatever the original's mode.

    With ``protect_with`` the copy is Fernet-encrypted as a whole (``.bak.fernet``), so a backup of a
    file holding plaintext secrets does not leave them on disk; ``lollms-server decrypt-file`` restores it.
    """
    suffix = ".bak.fernet" if protect_with else ".bak"
    data = read_config_bytes(path)
    content = protect_with.encrypt_bytes(data) if protect_with else data
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for name in [f"{tag}", f"{tag}.{stamp}", *(f"{tag}.{stamp}.{n}" for n in range(1, 100))]:
        backup = path.with_name(f"{path.name}.{name}{suffix}")
        try:
            atomic_write_bytes(backup, content, private=True, exclusive=True)  # never replaces an older backup
        except FileExistsError:
            continue
        return backup
    raise ConfigError([f"{path}: too many backups named {path.name}.{tag}.*; remove old ones"])


_MISSING = object()


def _has(values: Mapping[str, Any], dotted: str) -> bool:
    return dotted_value(values, dotted, _MISSING) is not _MISSING


def load_config_file(
    path: Path,
    schema: Mapping[str, Any],
    *,
    cipher: SecretCipher | None = None,
    dynamic_checks: Mapping[str, DynamicSectionCheck] | None = None,
    migrate: bool = True,
    required: Mapping[str, str] | None = None,
) -> LoadedFile:
    """Load and strictly validate one config file; migrate it (after a backup) when it is older.

    ``required`` maps dotted settings that must be written in the file itself (a default is not
    enough) to the hint shown when one is missing.
    """
    file_version, raw_values = read_raw(path)
    schema_version = str(schema.get("__version__", "0.0.0"))
    needs_migration = _compare_versions(path, file_version, schema_version)

    values = copy.deepcopy(raw_values)  # decryption must not touch what migration writes back
    problems = [
        f"{key}: not set in the file; {hint}" for key, hint in (required or {}).items() if not _has(values, key)
    ]
    problems += decrypt_secret_fields(values, schema, cipher)
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
            # Secrets are written back exactly as stored (still encrypted where they were); with a key, the backup
            # of a file that may hold secrets is encrypted as a whole, as encrypt-secrets and the wizard do.
            protect = cipher if secret_paths(schema) else None
            loaded.backup_path = backup_file(path, f"v{file_version}", protect_with=protect)
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
