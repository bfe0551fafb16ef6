"""The operator command that encrypts the plaintext secrets of existing binding instance files."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

from lollms_server.core.binding_types import discover_binding_types
from lollms_server.core.config import ServerConfig
from lollms_server.core.config_files import (
    backup_file,
    find_config_file,
    load_config_file,
    read_raw,
    write_raw,
)
from lollms_server.core.errors import ConfigError
from lollms_server.core.instance_files import configured_cipher
from lollms_server.core.secrets import encrypt_secret_fields


@dataclass
class EncryptionReport:
    instance: str
    path: Path | None
    encrypted_fields: list[str]
    backup: Path | None = None


def encrypt_instance_secrets(config: ServerConfig) -> tuple[list[EncryptionReport], list[str]]:
    """Encrypt, file by file, every plaintext secret field of the instances of ``bindings_map``.

    Each file is validated first (a broken file is reported, never rewritten), and its original is kept
    as a whole-file encrypted backup so no plaintext secret remains on disk. Returns the reports of the
    files handled and the problems of those skipped.
    """
    cipher = configured_cipher(config)
    if cipher is None:
        raise ConfigError(
            [
                "no encryption key: set security.encryption_key or LOLLMS_ENCRYPTION_KEY "
                "(create one with `lollms-server generate-key`)"
            ]
        )
    types = discover_binding_types(
        [(config.paths.example_bindings_folder, "builtin"), (config.paths.bindings_folder, "personal")]
    )
    reports: list[EncryptionReport] = []
    problems: list[str] = []
    for name, type_name in config.bindings_map.items():
        binding_type = types.get(type_name)
        if binding_type is None or binding_type.card is None:
            problems.append(f"{name}: binding type '{type_name}' not found or its card is broken")
            continue
        schema = binding_type.card.instance_schema
        try:
            path = find_config_file(config.paths.instance_bindings_folder, name)
            if path is None:
                problems.append(f"{name}: no instance file in {config.paths.instance_bindings_folder}")
                continue
            load_config_file(path, schema, cipher=cipher, migrate=False)
            version, raw = read_raw(path)
        except ConfigError as exc:
            problems += exc.problems
            continue
        updated = copy.deepcopy(raw)
        encrypted = encrypt_secret_fields(updated, schema, cipher)
        report = EncryptionReport(instance=name, path=path, encrypted_fields=encrypted)
        if encrypted:
            report.backup = backup_file(path, "plaintext", protect_with=cipher)
            write_raw(path, version or str(schema.get("__version__", "0")), updated)
        reports.append(report)
    return reports, problems
