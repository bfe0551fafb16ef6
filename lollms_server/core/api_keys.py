"""Named API keys: who a request comes from, what it may use and how much.

A key has a name, a role (``admin`` or ``user``), an optional expiry, the model ids and personalities it may use
(shell-style patterns; empty allows all) and limits (requests per minute, tokens per minute and per day,
concurrent requests). The key file (``security.keys_file``) keeps only each key's SHA-256 digest; the secret is
shown once, when it is created. Entries of ``security.allowed_api_keys`` stay valid as anonymous admin keys
without limits.

Every change reads the file, edits what it holds and writes it back under a lock (a lock file beside it, so the
``keys`` command and every replica sharing the file take turns): a key created or revoked elsewhere meanwhile
is never lost."""

from __future__ import annotations

import datetime as dt
import fnmatch
import hashlib
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

import yaml

from lollms_server.core.atomic_files import atomic_write_bytes
from lollms_server.core.config import API_KEY_DIGEST_PREFIX, SAFE_NAME, hash_api_key
from lollms_server.core.config_paths import config_text
from lollms_server.core.errors import ConfigError, NotFoundError
from lollms_server.core.file_locks import exclusive_lock

ROLES = ("admin", "user")
LIMIT_NAMES = ("requests_per_minute", "tokens_per_minute", "tokens_per_day", "concurrent_requests")
# How long a change waits for another process (the keys command, a replica) to finish its own change of the file.
KEY_FILE_LOCK_SECONDS = 10.0

T = TypeVar("T")
# libyaml where installed: every change reads and writes the whole file (325 keys: 0.3 s in pure Python, 0.05 s).
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


@dataclass(frozen=True)
class KeyLimits:
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    tokens_per_day: int | None = None
    concurrent_requests: int | None = None

    @cached_property
    def any(self) -> bool:
        """Whether the key has any limit (asked on every request: computed once)."""
        return any(getattr(self, name) is not None for name in LIMIT_NAMES)

    def as_dict(self) -> dict[str, int | None]:
        return {name: getattr(self, name) for name in LIMIT_NAMES}


@dataclass(frozen=True)
class Principal:
    """The identity a request's key gives it."""

    name: str
    role: str = "admin"
    limits: KeyLimits = field(default_factory=KeyLimits)
    models: tuple[str, ...] = ()
    personalities: tuple[str, ...] = ()
    expires_at: float | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def expired(self, now: float | None = None) -> bool:
        return self.expires_at is not None and (now or time.time()) >= self.expires_at

    def allows_model(self, binding: str, model: str | None) -> bool:
        """Whether this key may use ``binding`` (an instance) with ``model``: a pattern matches the instance
        ("llamacpp"), or the model id ("llamacpp/*", "ollama/llama3*")."""
        if not self.models:
            return True
        ids = [binding] + ([f"{binding}/{model}"] if model else [])
        return any(fnmatch.fnmatchcase(item, pattern) for pattern in self.models for item in ids)

    def allows_personality(self, personality: str | None) -> bool:
        if personality is None or not self.personalities:
            return True
        return any(fnmatch.fnmatchcase(personality, pattern) for pattern in self.personalities)


ANONYMOUS = Principal(name="anonymous")  # authentication off: everyone is this


@dataclass(frozen=True)
class KeyRecord:
    principal: Principal
    digest: str  # "sha256:<hex>"
    created: str

    def public(self) -> dict[str, Any]:
        """What an admin may see of a key: everything but its digest."""
        p = self.principal
        expires = dt.datetime.fromtimestamp(p.expires_at, dt.timezone.utc).isoformat() if p.expires_at else None
        return {
            "name": p.name,
            "role": p.role,
            "created": self.created,
            "expires": expires,
            "expired": p.expired(),
            "models": list(p.models),
            "personalities": list(p.personalities),
            "limits": p.limits.as_dict(),
        }


def _timestamp(value: Any, where: str) -> float | None:
    if value in (None, ""):
        return None
    if isinstance(value, dt.datetime):
        moment = value
    elif isinstance(value, dt.date):
        moment = dt.datetime(value.year, value.month, value.day)
    else:
        try:
            moment = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            raise ConfigError(
                [f"{where}.expires = {value!r}: write a date or time like 2027-01-31 or 2027-01-31T12:00Z"]
            ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    try:
        stamp = moment.timestamp()
        dt.datetime.fromtimestamp(stamp, dt.timezone.utc)  # shown in UTC: 9999-12-31T23:59-23:59 is year 10000 there
    except (OverflowError, ValueError, OSError):
        raise ConfigError([f"{where}.expires = {value!r}: out of range; write a date before 9999-12-31"]) from None
    return stamp


def _record(entry: Any, where: str) -> KeyRecord:
    if not isinstance(entry, Mapping):
        raise ConfigError([f"{where}: each key is a mapping with name, hash, role..."])
    problems = []
    name = entry.get("name")
    if not isinstance(name, str) or not SAFE_NAME.match(name):
        problems.append(f"{where}.name = {name!r}: letters, digits, '_', '-' or '.'")
    digest = entry.get("hash")
    if not isinstance(digest, str) or not digest.startswith(API_KEY_DIGEST_PREFIX) or len(digest) != 71:
        problems.append(f"{where}.hash: a 'sha256:<64 hex digits>' digest (keys are never stored in plain text)")
    role = entry.get("role", "user")
    if role not in ROLES:
        problems.append(f"{where}.role = {role!r}: allowed: admin or user")
    limits = entry.get("limits") or {}
    if not isinstance(limits, Mapping) or any(name not in LIMIT_NAMES for name in limits):
        problems.append(f"{where}.limits: allowed keys: {', '.join(LIMIT_NAMES)}")
        limits = {}
    for limit, value in limits.items():
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            problems.append(f"{where}.limits.{limit} = {value!r}: a whole number >= 1, or null")
    lists = {}
    for list_name in ("models", "personalities"):
        value = entry.get(list_name) or []
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            problems.append(f"{where}.{list_name}: a list of names or patterns")
            value = []
        lists[list_name] = tuple(value)
    if problems:
        raise ConfigError(problems)
    principal = Principal(
        name=str(name),
        role=role,
        limits=KeyLimits(**limits),
        models=lists["models"],
        personalities=lists["personalities"],
        expires_at=_timestamp(entry.get("expires"), where),
    )
    return KeyRecord(principal, str(digest), str(entry.get("created") or ""))


class KeyFile:
    """The named keys of ``path`` (a missing file has none).

    ``records`` is replaced, never edited in place, once the keys are in use: ``change`` and ``reload`` build a
    new dict, so a reader holding the old one never sees it change under it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.records: dict[str, KeyRecord] = {}
        self._guard = threading.Lock()  # the keys taken and what follows them (``then``) change together

    @property
    def lock_path(self) -> Path:
        return self.path.with_name(f".{self.path.name}.lock")

    def reload(self, then: Callable[[], None] | None = None) -> None:
        """Take the keys the file holds now; ``then`` runs with them in force, before any other change is taken."""
        with self._guard:
            self.records = KeyFile.load(self.path).records
            if then is not None:
                then()

    def change(self, edit: Callable[[KeyFile], T], then: Callable[[], None] | None = None) -> T:
        """Apply ``edit`` to the keys the file holds now, write them and take them, while no other process or
        thread changes the file, so no change made elsewhere is lost; ``then`` runs with the new keys in force.
        ``LockBusyError`` when another process holds the file longer than KEY_FILE_LOCK_SECONDS."""
        with exclusive_lock(self.lock_path, KEY_FILE_LOCK_SECONDS, f"the key file {self.path}"), self._guard:
            current = KeyFile.load(self.path)
            result = edit(current)
            current.save()
            self.records = current.records
            if then is not None:
                then()
        return result

    @classmethod
    def load(cls, path: Path) -> KeyFile:
        keys = cls(path)
        if not path.exists():
            return keys
        try:
            raw = yaml.load(config_text(path, path.read_bytes()), Loader=_LOADER) or {}  # noqa: S506 (safe loader)
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError([f"{path}: cannot be read: {exc}"]) from None
        entries = raw.get("keys") if isinstance(raw, Mapping) else None
        if not isinstance(entries, list):
            raise ConfigError([f"{path}: expected 'keys:' followed by a list of keys"])
        problems: list[str] = []
        for index, entry in enumerate(entries):
            try:
                record = _record(entry, f"{path}: keys[{index}]")
            except ConfigError as exc:
                problems += exc.problems
                continue
            if record.principal.name in keys.records:
                problems.append(f"{path}: keys[{index}]: the name '{record.principal.name}' is used twice")
            keys.records[record.principal.name] = record
        if problems:
            raise ConfigError(problems)
        return keys

    def save(self) -> None:
        entries = []
        for record in self.records.values():
            public = record.public()
            entries.append(
                {
                    "name": public["name"],
                    "hash": record.digest,
                    "role": public["role"],
                    "created": record.created,
                    "expires": public["expires"],
                    "models": public["models"],
                    "personalities": public["personalities"],
                    "limits": {key: value for key, value in public["limits"].items() if value is not None},
                }
            )
        text = yaml.dump({"keys": entries}, Dumper=_DUMPER, sort_keys=False)
        atomic_write_bytes(self.path, text.encode("utf-8"), private=True)

    def create(
        self,
        name: str,
        role: str = "user",
        limits: KeyLimits | None = None,
        models: tuple[str, ...] = (),
        personalities: tuple[str, ...] = (),
        expires: str | None = None,
    ) -> str:
        """Add a key and return its secret (shown once; only its digest is kept)."""
        if name in self.records:
            raise ConfigError([f"a key named '{name}' exists; revoke it first or choose another name"])
        secret = "lollms_" + secrets.token_urlsafe(32)
        created = dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()
        entry = {
            "name": name,
            "hash": hash_api_key(secret),
            "role": role,
            "created": created,
            "expires": expires,
            "models": list(models),
            "personalities": list(personalities),
            "limits": (limits or KeyLimits()).as_dict(),
        }
        self.records[name] = _record(entry, "new key")
        return secret

    def revoke(self, name: str) -> None:
        if self.records.pop(name, None) is None:
            raise NotFoundError(f"no key named '{name}' (keys: {', '.join(self.records) or 'none'})")


class ApiKeyVerifier:
    """Who a presented key is: a named key of the key file, or an entry of ``allowed_api_keys`` (anonymous
    admin). Lookups go by the SHA-256 digest of the presented key, so nothing depends on how its text compares."""

    def __init__(self, allowed_keys: list[str], named: KeyFile | None = None) -> None:
        self._by_digest: dict[bytes, Principal] = {}
        self._required = False
        self.update(allowed_keys, named)

    def update(self, allowed_keys: list[str], named: KeyFile | None = None) -> None:
        """Take a new set of keys at once (a reload): requests already admitted keep their identity."""
        by_digest: dict[bytes, Principal] = {}
        for index, key in enumerate(allowed_keys):
            digest = (
                bytes.fromhex(key[len(API_KEY_DIGEST_PREFIX) :])
                if key.startswith(API_KEY_DIGEST_PREFIX)
                else hashlib.sha256(key.encode("utf-8")).digest()
            )
            by_digest[digest] = Principal(name=f"config-key-{index + 1}")
        for record in named.records.values() if named else ():
            by_digest[bytes.fromhex(record.digest[len(API_KEY_DIGEST_PREFIX) :])] = record.principal
        self._by_digest = by_digest
        # Once a key exists, keys stay required for the life of the process: revoking the last one (or a key file
        # emptied at run time) locks every request out instead of opening the server. Authentication is off only
        # when the server starts without any key, which the configuration says explicitly (allowed_api_keys: []).
        self._required = self._required or bool(by_digest)

    @property
    def required(self) -> bool:
        return self._required

    def identify(self, presented: str) -> Principal | None:
        return self._by_digest.get(hashlib.sha256(presented.encode("utf-8")).digest())

    def is_valid(self, presented: str) -> bool:
        principal = self.identify(presented)
        return principal is not None and not principal.expired()


# The principal of the request being served (set by the API's authentication, read by the core's checks).
current_principal: ContextVar[Principal | None] = ContextVar("lollms_principal", default=None)
