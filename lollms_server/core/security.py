"""API key verification: constant-time, plaintext or ``sha256:<hex>`` entries alike."""

from __future__ import annotations

import hashlib
import hmac

from lollms_server.core.config import API_KEY_DIGEST_PREFIX


class ApiKeyVerifier:
    """Holds only SHA-256 digests of the allowed keys and checks a presented key against all of them."""

    def __init__(self, allowed_keys: list[str]) -> None:
        self._digests = [
            bytes.fromhex(key[len(API_KEY_DIGEST_PREFIX) :])
            if key.startswith(API_KEY_DIGEST_PREFIX)
            else hashlib.sha256(key.encode("utf-8")).digest()
            for key in allowed_keys
        ]

    @property
    def required(self) -> bool:
        return bool(self._digests)

    def is_valid(self, presented: str) -> bool:
        digest = hashlib.sha256(presented.encode("utf-8")).digest()
        # Compare with every entry, never stopping early, so timing tells nothing about which one matched.
        matched = False
        for allowed in self._digests:
            matched |= hmac.compare_digest(digest, allowed)
        return matched
