"""A configuration being prepared: the main config's values and the binding instances, held in memory until the
operator saves — so Ctrl-C leaves nothing behind — then validated as the server would load them and written
atomically, each replaced file backed up first, secrets encrypted when a key is set.

The interactive wizard and the non-interactive flags (``--preset``, ``--set``) build the same plan, so they write
the same files."""

from __future__ import annotations

import copy
import ipaddress
import os
import secrets
import signal
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from lollms_server.core.binding_cards import BindingCard, load_card
from lollms_server.core.config import (
    DEFAULT_CONFIG_DIR_NAME,
    MAIN_CONFIG_STEM,
    SAFE_NAME,
    ServerConfig,
    checkout_personal_folders,
    hash_api_key,
)
from lollms_server.core.config_files import backup_file, read_raw, write_config_file
from lollms_server.core.config_paths import find_config_file
from lollms_server.core.config_schema import DEFAULT_ALLOWED_ORIGINS, MAIN_SCHEMA
from lollms_server.core.config_validation import secret_paths, validate_values
from lollms_server.core.errors import ConfigError
from lollms_server.core.secrets import (
    ENCRYPTION_KEY_ENV,
    SecretCipher,
    SecretKeyError,
    decrypt_secret_fields,
    dotted_value,
    encrypt_secret_fields,
    is_encrypted,
)

FORMATS = {"yaml": ".yaml", "toml": ".toml", "json": ".json", "sqlite": ".db"}
DEFAULT_PORT = 9601


def default_folder() -> Path:
    """Where the server looks for its configuration: $LOLLMS_CONFIG_DIR, else ./lollms_configs."""
    return Path(os.environ.get("LOLLMS_CONFIG_DIR") or DEFAULT_CONFIG_DIR_NAME).expanduser()


@dataclass(frozen=True)
class PresetInstance:
    type_name: str
    values: dict[str, Any]
    ask: tuple[str, ...]
    copy_from: dict[str, str]  # setting -> the instance of the same preset whose answer it reuses
    require: tuple[str, ...]


@dataclass(frozen=True)
class Preset:
    name: str
    title: str
    description: str
    instances: dict[str, PresetInstance]
    defaults: dict[str, str]
    main: dict[str, dict[str, Any]]


def load_presets() -> dict[str, Preset]:
    """The presets shipped in ``presets.yaml``."""
    raw = yaml.safe_load(resources.files(__package__).joinpath("presets.yaml").read_text(encoding="utf-8"))
    return {
        name: Preset(
            name=name,
            title=entry["title"],
            description=" ".join(entry.get("description", "").split()),
            instances={
                instance: PresetInstance(
                    type_name=spec["type"],
                    values=dict(spec.get("values") or {}),
                    ask=tuple(spec.get("ask") or ()),
                    copy_from=dict(spec.get("copy") or {}),
                    require=tuple(spec.get("require") or ()),
                )
                for instance, spec in entry["instances"].items()
            },
            defaults=dict(entry.get("defaults") or {}),
            main={section: dict(values) for section, values in (entry.get("main") or {}).items()},
        )
        for name, entry in raw.items()
    }


def binding_cards(example_folder: Path, personal_folder: Path | None = None) -> dict[str, BindingCard]:
    """The cards of the built-in and personal binding types (read, not imported: fast, and safe without their
    packages)."""
    cards: dict[str, BindingCard] = {}
    for root in (example_folder, personal_folder):
        if root is None or not root.is_dir():
            continue
        for folder in sorted(root.iterdir()):
            try:
                card = load_card(folder)
            except (ConfigError, OSError):
                continue
            cards[card.type_name] = card
    return cards


@dataclass
class InstancePlan:
    type_name: str
    values: dict[str, Any]  # as entered: secrets in plain text, in memory only
    path: Path | None = None  # its existing file, replaced (after a backup) on save


@dataclass
class ConfigPlan:
    folder: Path
    file_format: str
    main: dict[str, Any]
    instances: dict[str, InstancePlan] = field(default_factory=dict)
    new_api_keys: list[str] = field(default_factory=list)  # shown once after saving; main holds their hashes
    existing_path: Path | None = None  # the main config being replaced or edited
    removed_instances: list[Path] = field(default_factory=list)
    new_encryption_key: str | None = None  # generated for the environment variable: shown once after saving

    @property
    def path(self) -> Path:
        return self.existing_path or self.folder / f"{MAIN_CONFIG_STEM}{FORMATS[self.file_format]}"

    def section(self, name: str) -> dict[str, Any]:
        section: dict[str, Any] = self.main.setdefault(name, {})
        return section

    # --- building -------------------------------------------------------------------------------------
    def add_api_key(self) -> str:
        key = "lollms_" + secrets.token_urlsafe(32)
        self.section("security").setdefault("allowed_api_keys", []).append(hash_api_key(key))
        self.new_api_keys.append(key)
        return key

    def set_port(self, port: int) -> None:
        """``server.port``, with the local origins of the allowed list following it."""
        server = self.section("server")
        old = int(server.get("port", DEFAULT_PORT))
        server["port"] = port
        origins = server.get("allowed_origins", list(DEFAULT_ALLOWED_ORIGINS))
        server["allowed_origins"] = [
            origin.replace(f":{old}", f":{port}")
            if origin.startswith(("http://localhost:", "http://127.0.0.1:"))
            else origin
            for origin in origins
        ]

    def apply_preset(self, preset: Preset, cards: Mapping[str, BindingCard]) -> None:
        """The preset's instances (replacing bindings_map), defaults and main values."""
        unknown = sorted({spec.type_name for spec in preset.instances.values()} - set(cards))
        if unknown:
            raise ConfigError(
                [f"preset '{preset.name}' needs binding types that are not available: {', '.join(unknown)}"]
            )
        self.instances = {}
        for name, spec in preset.instances.items():
            values = {"type": spec.type_name, **copy.deepcopy(spec.values)}
            self.instances[name] = InstancePlan(spec.type_name, values, self._instance_file(name))
        self.main["bindings_map"] = {name: spec.type_name for name, spec in preset.instances.items()}
        defaults = self.section("defaults")
        for key in [key for key in defaults if key.endswith("_binding")]:
            defaults[key] = None
        defaults.update(preset.defaults)
        for section, values in preset.main.items():
            self.section(section).update(copy.deepcopy(values))

    def copy_shared_answers(self, preset: Preset) -> None:
        """Settings a preset reuses from another of its instances (one API key for two instances)."""
        for name, spec in preset.instances.items():
            for setting, source in spec.copy_from.items():
                if source in self.instances and setting in self.instances[source].values:
                    self.instances[name].values[setting] = self.instances[source].values[setting]

    def add_instance(self, name: str, type_name: str, values: Mapping[str, Any] | None = None) -> InstancePlan:
        if not SAFE_NAME.match(name):
            raise ConfigError([f"instance name {name!r}: use letters, digits, '_', '-' or '.' (it names a file)"])
        plan = InstancePlan(type_name, {"type": type_name, **dict(values or {})}, self._instance_file(name))
        self.instances[name] = plan
        self.section("bindings_map")[name] = type_name
        return plan

    def remove_instance(self, name: str) -> None:
        removed = self.instances.pop(name, None)
        self.section("bindings_map").pop(name, None)
        for key, value in list(self.section("defaults").items()):
            if value == name:
                self.section("defaults")[key] = None
        if removed is not None and removed.path is not None:
            self.removed_instances.append(removed.path)

    def _instance_file(self, name: str) -> Path | None:
        folder = self.instances_folder()
        return find_config_file(folder, name) if folder.is_dir() else None

    def instances_folder(self) -> Path:
        paths = self.main.get("paths", {})
        base = (self.folder / paths.get("config_base_dir", ".")).resolve()
        return base / paths.get("instance_bindings_folder", "bindings")

    def set_value(self, assignment: str, cards: Mapping[str, BindingCard]) -> None:
        """``section.key=value`` or ``instances.NAME.setting=value`` (the value read as YAML: 8080, true, [a, b],
        null); ``instances.NAME.type=TYPE`` adds an instance."""
        target, separator, text = assignment.partition("=")
        if not separator or not target.strip():
            raise ConfigError([f"--set {assignment!r}: write section.key=value or instances.NAME.setting=value"])
        parts = target.strip().split(".")
        try:
            value = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError as exc:
            raise ConfigError([f"--set {target}: the value cannot be read: {exc}"]) from None
        if parts[0] == "instances":
            if len(parts) != 3:
                raise ConfigError([f"--set {target}: write instances.NAME.setting=value"])
            _, name, setting = parts
            if setting == "type":
                if str(value) not in cards:
                    raise ConfigError(
                        [f"--set {target}: unknown binding type {value!r}; known: {', '.join(sorted(cards))}"]
                    )
                self.add_instance(name, str(value), self.instances[name].values if name in self.instances else None)
                self.instances[name].values["type"] = str(value)
                return
            if name not in self.instances:
                raise ConfigError([f"--set {target}: no instance '{name}' (add one with instances.{name}.type=TYPE)"])
            self.instances[name].values[setting] = value
            return
        if len(parts) != 2 or parts[0] not in MAIN_SCHEMA or parts[0] == "__version__":
            sections = ", ".join(key for key in MAIN_SCHEMA if key != "__version__")
            raise ConfigError([f"--set {target}: write SECTION.KEY=value with a section among {sections}"])
        section, key = parts
        if (section, key) == ("server", "port") and isinstance(value, int):
            self.set_port(value)
        else:
            self.section(section)[key] = value

    # --- checking and writing -------------------------------------------------------------------------
    def problems(
        self, cards: Mapping[str, BindingCard], required: Mapping[str, tuple[str, ...]] | None = None
    ) -> list[str]:
        """Everything the server would refuse, plus the wizard's own rules (a non-local address needs a key;
        settings a preset requires)."""
        problems: list[str] = []
        try:
            config = ServerConfig.from_values(self.main, config_dir=self.folder, path=self.path)
        except ConfigError as exc:
            return exc.problems
        if not config.api_keys and not is_loopback(config.host):
            problems.append(
                f"server.host = {config.host!r} listens beyond this machine: it needs an API key "
                "(security.allowed_api_keys)"
            )
        for name, type_name in config.bindings_map.items():
            plan = self.instances.get(name)
            card = cards.get(type_name)
            if card is None:
                problems.append(f"instance '{name}': unknown binding type '{type_name}'")
                continue
            if plan is None:
                if self._instance_file(name) is None:
                    problems.append(f"instance '{name}': no settings (its file is missing)")
                continue
            values = copy.deepcopy(plan.values)
            decrypt_secret_fields(values, card.instance_schema, self._cipher_or_none())
            found, unknown = validate_values(values, card.instance_schema)
            problems += [f"instance '{name}': {problem}" for problem in found]
            problems += [f"instance '{name}': unknown setting '{key}' for {type_name}" for key in unknown]
            for setting in (required or {}).get(name, ()):
                if values.get(setting) in (None, ""):
                    problems.append(f"instance '{name}': {setting} must be set (--set instances.{name}.{setting}=...)")
        return problems

    def encryption_key(self) -> str | None:
        return self.section("security").get("encryption_key") or os.environ.get(ENCRYPTION_KEY_ENV) or None

    def _cipher_or_none(self) -> SecretCipher | None:
        key = self.encryption_key()
        try:
            return SecretCipher(key) if key else None
        except SecretKeyError:
            return None

    def plaintext_secrets(self, cards: Mapping[str, BindingCard]) -> list[str]:
        """Secret settings that would be written in plain text (no encryption key)."""
        if self._cipher_or_none() is not None:
            return []
        found = []
        for name, plan in self.instances.items():
            card = cards.get(plan.type_name)
            for path in secret_paths(card.instance_schema) if card else []:
                value = dotted_value(plan.values, path)
                if isinstance(value, str) and value and not is_encrypted(value):
                    found.append(f"{name}.{path}")
        return found

    def write(
        self, cards: Mapping[str, BindingCard], instances: Collection[str] | None = None, main: bool = True
    ) -> list[str]:
        """Write the instance files (``instances``: only those) then the main config, each atomically, backing up
        what it replaces; Ctrl-C waits until the files are written. Returns one line per file."""
        problems = self.problems(cards)
        if problems:
            raise ConfigError(problems)
        cipher = self._cipher_or_none()
        extension = FORMATS[self.file_format]
        report = []
        with _interrupts_deferred():
            folder = self.instances_folder()
            for name, plan in self.instances.items():
                if instances is not None and name not in instances:
                    continue
                schema = cards[plan.type_name].instance_schema
                values = copy.deepcopy(plan.values)
                if cipher is not None:
                    encrypt_secret_fields(values, schema, cipher)
                path = plan.path or folder / f"{name}{extension}"
                report.append(_replace(path, schema, values, cipher))
            for path in self.removed_instances:
                if path.exists():
                    backup = backup_file(path, "removed", protect_with=cipher)
                    path.unlink()
                    report.append(f"removed {path} (backup: {backup.name})")
            if main:
                report.append(_replace(self.path, MAIN_SCHEMA, self.main, None))
        return report


def _replace(path: Path, schema: Mapping[str, Any], values: Mapping[str, Any], cipher: SecretCipher | None) -> str:
    backup = (
        backup_file(path, "wizard", protect_with=cipher if secret_paths(schema) else None) if path.exists() else None
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    write_config_file(path, schema, values)
    return f"wrote {path}" + (f" (backup: {backup.name})" if backup else "")


@contextmanager
def _interrupts_deferred() -> Iterator[None]:
    """Ctrl-C during the writes is honoured once they are done (each file is atomic; the set should be too)."""
    received: list[Any] = []
    try:
        previous = signal.signal(signal.SIGINT, lambda *args: received.append(args))
    except ValueError:  # not the main thread: nothing to defer
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if received:
            raise KeyboardInterrupt


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def new_plan(folder: Path, file_format: str) -> ConfigPlan:
    """A plan starting where a first run starts: local only, the web UI on, an API key."""
    folder = folder.absolute()
    plan = ConfigPlan(
        folder=folder,
        file_format=file_format,
        main={
            "server": {"host": "127.0.0.1", "port": DEFAULT_PORT, "allowed_origins": list(DEFAULT_ALLOWED_ORIGINS)},
            "paths": checkout_personal_folders(folder.resolve()),
            "security": {"allowed_api_keys": []},
            "webui": {"enable_ui": True},
            "bindings_map": {},
            "defaults": {},
        },
    )
    plan.add_api_key()
    return plan


def open_plan(path: Path, cards: Mapping[str, BindingCard]) -> ConfigPlan:
    """The plan of an existing configuration (its values as stored; encrypted secrets stay encrypted)."""
    _, main = read_raw(path)
    file_format = next((name for name, ext in FORMATS.items() if path.suffix.lower() == ext), "yaml")
    plan = ConfigPlan(folder=path.parent, file_format=file_format, main=main, existing_path=path)
    for name, type_name in dict(main.get("bindings_map") or {}).items():
        existing = plan._instance_file(name)
        if existing is None:
            continue
        _, values = read_raw(existing)
        plan.instances[name] = InstancePlan(type_name, values, existing)
    return plan
