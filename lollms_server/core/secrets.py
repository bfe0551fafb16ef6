"""Field-by-field Fernet encryption of the settings a schema marks ``"secret": true``.

An encrypted value is stored as ``fernet:<token>``, so plaintext and encrypted values can live side by
side in one file and a missing or wrong key is detected instead of handing garbage to a binding.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from lollms_server.core.config_validation import secret_paths

ENCRYPTED_PREFIX = "fernet:"
ENCRYPTION_KEY_ENV = "LOLLMS_ENCRYPTION_KEY"


class SecretKeyError(ValueError):
    """The encryption key is malformed."""


def is_encrypted(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(ENCRYPTED_PREFIX)


def generate_key() -> str:
    return Fernet.generate_key().decode("ascii")


def resolve_encryption_key(configured: str | None) -> str | None:
    """The key in force: ``LOLLMS_ENCRYPTION_KEY`` if set, else ``security.encryption_key``."""
    return os.environ.get(ENCRYPTION_KEY_ENV) or configured or None


class SecretCipher:
    """Encrypts and decrypts single values with one Fernet key."""

    def __init__(self, key: str) -> None:
        try:
            self._fernet = Fernet(key.encode("ascii"))
        except (ValueError, UnicodeEncodeError) as exc:
            raise SecretKeyError(
                "the encryption key is not a valid Fernet key (32 url-safe base64-encoded bytes); "
                "generate one with `lollms-server generate-key`"
            ) from exc
        # A short, non-reversible fingerprint lets operators tell keys apart in messages.
        self.fingerprint = hashlib.sha256(key.encode("ascii")).hexdigest()[:8]

    def encrypt(self, plaintext: str) -> str:
        return ENCRYPTED_PREFIX + self._fernet.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def decrypt(self, stored: str) -> str:
        """Raises ``InvalidToken`` when the value was encrypted with another key or is damaged."""
        return self._fernet.decrypt(stored[len(ENCRYPTED_PREFIX) :].encode("ascii")).decode("utf-8")

    def encrypt_bytes(self, data: bytes) -> bytes:
        return self._fernet.encrypt(data)

    def decrypt_bytes(self, data: bytes) -> bytes:
        return self._fernet.decrypt(data)


def dotted_value(values: Mapping[str, Any], dotted: str, default: Any = None) -> Any:
    """The value at ``section.key`` (any depth) of nested mappings, or ``default`` when a part is missing."""
    node: Any = values
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]
    return node


def _set(values: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = values
    for part in parts[:-1]:
        node = node[part]
    node[parts[-1]] = value


def decrypt_secret_fields(values: dict[str, Any], schema: Mapping[str, Any], cipher: SecretCipher | None) -> list[str]:
    """Decrypt every encrypted secret field of ``values`` in place; return one problem per failure."""
    problems: list[str] = []
    for path in secret_paths(schema):
        stored = dotted_value(values, path)
        if not is_encrypted(stored):
            continue
        if cipher is None:
            problems.append(
                f"{path}: the value is encrypted but no encryption key is set "
                f"(set security.encryption_key in the main config or {ENCRYPTION_KEY_ENV})"
            )
            continue
        try:
            _set(values, path, cipher.decrypt(stored))
        except InvalidToken:
            problems.append(
                f"{path}: the value cannot be decrypted with the configured encryption key "
                f"(fingerprint {cipher.fingerprint}); it was encrypted with another key or is damaged"
            )
    return problems


def encrypt_secret_fields(values: dict[str, Any], schema: Mapping[str, Any], cipher: SecretCipher) -> list[str]:
    """Encrypt every plaintext secret string of ``values`` in place; return the paths encrypted."""
    encrypted: list[str] = []
    for path in secret_paths(schema):
        stored = dotted_value(values, path)
        if isinstance(stored, str) and stored and not is_encrypted(stored):
            _set(values, path, cipher.encrypt(stored))
            encrypted.append(path)
    return encrypted
