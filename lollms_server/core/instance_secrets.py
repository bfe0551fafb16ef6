"""The operator command that encrypts the plaintext secrets of existing binding instance files."""

from __future__ import annotations

import copy
import glob
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.fernet import InvalidToken

from lollms_server.core.atomic_files import atomic_write_bytes
from lollms_server.core.binding_types import discover_binding_types
from lollms_server.core.config import ServerConfig
from lollms_server.core.config_files import (
    backup_file,
    find_config_file,
    load_config_file,
    read_raw,
    write_raw,
)
from lollms_server.core.config_validation import secret_paths
from lollms_server.core.errors import ConfigError
from lollms_server.core.instance_files import configured_cipher
from lollms_server.core.secrets import SecretCipher, encrypt_secret_fields


@dataclass
class EncryptionReport:
    instance: str
    path: Path | None
    encrypted_fields: list[str]
    backup: Path | None = None
    encrypted_backups: list[Path] = field(default_factory=list)  # older plaintext backups, now .bak.fernet


def plaintext_backups(path: Path) -> list[Path]:
    """The plaintext backups of config file ``path`` (``<name>.<tag>.bak``, written by a migration or the wizard
    before there was an encryption key): regular files only."""
    prefix = f"{path.name}."
    return sorted(
        candidate
        for candidate in path.parent.glob(f"{glob.escape(path.name)}.*.bak")
        if candidate.name.startswith(prefix) and candidate.is_file() and not candidate.is_symlink()
    )


def encrypt_backup(backup: Path, cipher: SecretCipher) -> Path:
    """Replace plaintext ``backup`` with ``<backup>.fernet`` (the whole file encrypted, 0600, restored with
    ``lollms-server decrypt-file``). A ``.fernet`` copy a killed run already wrote is kept when it holds the same
    content; one that differs is a ConfigError and both stay."""
    try:
        data = backup.read_bytes()
    except OSError as exc:
        raise ConfigError([f"{backup}: cannot be read: {exc.strerror or exc}"]) from None
    encrypted = backup.with_name(f"{backup.name}.fernet")
    try:
        atomic_write_bytes(encrypted, cipher.encrypt_bytes(data), private=True, exclusive=True)
    except FileExistsError:
        try:
            same = cipher.decrypt_bytes(encrypted.read_bytes()) == data
        except (InvalidToken, OSError):
            same = False
        if not same:
            raise ConfigError(
                [f"{backup}: {encrypted.name} exists with another content; compare them, then remove one"]
            ) from None
    backup.unlink()
    return encrypted


def encrypt_instance_secrets(config: ServerConfig) -> tuple[list[EncryptionReport], list[str]]:
    """Encrypt, file by file, every plaintext secret field of the instances of ``bindings_map``.

    Each file is validated first (a broken file is reported, never rewritten), and its original is kept
    as a whole-file encrypted backup so no plaintext secret remains on disk; its older plaintext backups are
    encrypted the same way. Returns the reports of the files handled and the problems of those skipped.
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
        except ConfigError as exc:
            problems += exc.problems
            continue
        old_backups: list[Path] = []
        for backup in plaintext_backups(path) if secret_paths(schema) else []:
            try:
                old_backups.append(encrypt_backup(backup, cipher))
            except ConfigError as exc:
                problems += exc.problems
        try:
            load_config_file(path, schema, cipher=cipher, migrate=False)
            version, raw = read_raw(path)
        except ConfigError as exc:
            problems += exc.problems
            continue
        updated = copy.deepcopy(raw)
        encrypted = encrypt_secret_fields(updated, schema, cipher)
        report = EncryptionReport(instance=name, path=path, encrypted_fields=encrypted, encrypted_backups=old_backups)
        if encrypted:
            report.backup = backup_file(path, "plaintext", protect_with=cipher)
            write_raw(path, version or str(schema.get("__version__", "0")), updated)
        reports.append(report)
    return reports, problems
