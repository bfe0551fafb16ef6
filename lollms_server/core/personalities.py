"""PersonalityManager: discovers, loads and serves LOLLMS personalities (config-based and scripted)."""

from __future__ import annotations

import inspect
import logging
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from lollms_server.core.errors import BadRequestError, NotFoundError, UnavailableError
from lollms_server.core.generation import AppliedPersonality
from lollms_server.core.model_access import PERSONALITY_LIST_HINT, ModelAccess
from lollms_server.core.personality_config import PersonalityConfig
from lollms_server.core.plugin_import import import_file
from lollms_server.core.requirements import missing_requirements

__all__ = ["Personality", "PersonalityConfig", "PersonalityManager"]

logger = logging.getLogger(__name__)

CONFIG_FILE = "config.yaml"
DEFAULT_SCRIPT = Path("scripts") / "workflow.py"
_MAX_DEPTH = 4  # <root>/<category>/<group>/<name>/config.yaml at most
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass
class Personality:
    """A loaded personality, available or not."""

    id: str
    folder: Path
    source: str
    config: PersonalityConfig
    parameters: dict[str, Any]
    workflow: Callable[..., Any] | None = None
    missing_dependencies: list[str] = field(default_factory=list)
    # What the workflow's own ``unavailable_reason()`` said at load (e.g. no sandbox to run code in).
    workflow_unavailable: str | None = None

    @property
    def is_scripted(self) -> bool:
        return self.workflow is not None

    @property
    def unavailable_reason(self) -> str | None:
        if self.workflow_unavailable:
            return self.workflow_unavailable
        if not self.missing_dependencies:
            return None
        return (
            f"missing dependencies: {', '.join(self.missing_dependencies)} "
            f"(install them with `lollms-server install-personality-deps {self.id}`)"
        )

    def icon_file(self) -> Path | None:
        if not self.config.icon:
            return None
        for candidate in (self.folder / "assets" / self.config.icon, self.folder / self.config.icon):
            if ".." not in Path(self.config.icon).parts and candidate.is_file():
                return candidate
        return None

    def public_info(self) -> dict[str, Any]:
        config = self.config
        return {
            "id": self.id,
            "name": config.name,
            "author": config.author,
            "version": config.version,
            "description": config.personality_description,
            "category": config.category,
            "language": config.language,
            "tags": list(config.tags),
            "icon": config.icon,
            "icon_url": f"/api/v1/personalities/{self.id}/icon" if self.icon_file() else None,
            "is_scripted": self.is_scripted,
            "path": str(self.folder),
            "source": self.source,
            "available": self.unavailable_reason is None,
            "unavailable_reason": self.unavailable_reason,
            "welcome_message": config.welcome_message,
            "disclaimer": config.disclaimer,
        }

    def applied(self) -> AppliedPersonality:
        return AppliedPersonality(
            name=self.id,
            system_prompt=self.config.personality_conditioning or None,
            parameters=self.parameters,
            workflow=self.workflow,
            personality=self,
        )


def find_personality_folders(root: Path) -> Iterator[Path]:
    """Folders under ``root`` holding a config.yaml; a personality's own subfolders are not searched."""
    pending = [(root, 0)]
    while pending:
        folder, depth = pending.pop()
        try:
            children = sorted(child for child in folder.iterdir() if child.is_dir())
        except OSError:
            continue
        for child in reversed(children):
            if child.name.startswith((".", "__")):
                continue
            if (child / CONFIG_FILE).is_file():
                yield child
            elif depth + 1 < _MAX_DEPTH:
                pending.append((child, depth + 1))


def _import_workflow(script: Path, personality_id: str) -> tuple[Callable[..., Any], str | None]:
    """The script's ``run_workflow``, and what its optional ``unavailable_reason()`` says (None: usable)."""
    module = import_file(script, "_lollms_personality_" + re.sub(r"\W", "_", personality_id))
    workflow = getattr(module, "run_workflow", None)
    if workflow is None:
        raise ImportError(f"{script.name} defines no run_workflow")
    if not (inspect.iscoroutinefunction(workflow) or inspect.isasyncgenfunction(workflow)):
        raise ImportError(f"run_workflow in {script.name} must be `async def run_workflow(prompt, params, context)`")
    check = getattr(module, "unavailable_reason", None)
    return workflow, (check() if callable(check) else None)


def _script_of(folder: Path, config: PersonalityConfig) -> Path | None:
    if config.script_path:
        path = folder / config.script_path
        if ".." in Path(config.script_path).parts or not path.is_file():
            raise FileNotFoundError(f"script_path '{config.script_path}' is not a file inside the personality")
        return path
    default = folder / DEFAULT_SCRIPT
    return default if default.is_file() else None


def load_personality(folder: Path, personality_id: str, source: str) -> Personality:
    """Load one personality folder; ValueError carries a readable reason when it is broken."""
    path = folder / CONFIG_FILE
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_YAML_LOADER)  # noqa: S506 (safe loader)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ValueError(f"config.yaml cannot be read: {exc}") from exc
    if not isinstance(raw, dict):
        raise ValueError("config.yaml must be a mapping of settings")
    try:
        config = PersonalityConfig.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ValueError(f"config.yaml: {problems}") from None
    try:
        parameters = config.generation_parameters()
    except BadRequestError as exc:
        raise ValueError(f"config.yaml model_* settings: {exc}") from None
    try:
        script = _script_of(folder, config)
        workflow, workflow_unavailable = _import_workflow(script, personality_id) if script else (None, None)
    except Exception as exc:
        raise ValueError(f"workflow script failed to load: {type(exc).__name__}: {exc}") from exc
    return Personality(
        id=personality_id,
        folder=folder,
        source=source,
        config=config,
        parameters=parameters,
        workflow=workflow,
        missing_dependencies=missing_requirements(config.dependencies),
        workflow_unavailable=workflow_unavailable,
    )


def _assign_ids(found: list[tuple[Path, Path]]) -> dict[Path, str]:
    """Folder name as id; folders whose names collide within a root get their path under it."""
    names = Counter((root, folder.name) for root, folder in found)
    return {
        folder: folder.name if names[(root, folder.name)] == 1 else folder.relative_to(root).as_posix()
        for root, folder in found
    }


class PersonalityManager:
    """Personalities of the built-in zoo and the personal folder, honouring ``personalities_config``."""

    def __init__(self, folders: list[tuple[Path, str]], overrides: Mapping[str, Any] | None = None) -> None:
        self.folders = folders
        self.overrides = dict(overrides or {})
        self.personalities: dict[str, Personality] = {}
        self.broken: dict[str, str] = {}
        self.disabled: set[str] = set()
        self._by_name: dict[str, list[str]] = {}
        self.load_seconds = 0.0

    def _enabled(self, folder: Path, personality_id: str, default: bool) -> bool:
        for key in (personality_id, folder.name):
            setting = self.overrides.get(key)
            if isinstance(setting, Mapping) and "enabled" in setting:
                return bool(setting["enabled"])
        return default

    def load(self) -> None:
        """Discover and load everything (blocking: run it in a thread)."""
        started = time.perf_counter()
        for root, source in self.folders:
            if not root.is_dir():
                continue
            found = [(root, folder) for folder in find_personality_folders(root)]
            for folder, personality_id in _assign_ids(found).items():
                self._load_one(folder, personality_id, source)
        self._index_names()
        self.load_seconds = time.perf_counter() - started
        logger.info(
            "Loaded %d personalities in %.2fs (%d broken, %d disabled)",
            len(self.personalities),
            self.load_seconds,
            len(self.broken),
            len(self.disabled),
        )

    def _load_one(self, folder: Path, personality_id: str, source: str) -> None:
        try:
            personality = load_personality(folder, personality_id, source)
        except ValueError as exc:
            self.broken[personality_id] = f"{folder}: {exc}"
            logger.warning("Personality '%s' is broken: %s", personality_id, self.broken[personality_id])
            return
        if not self._enabled(folder, personality_id, personality.config.enabled_by_default):
            self.disabled.add(personality_id)
            self.personalities.pop(personality_id, None)
            return
        if personality_id in self.personalities:
            logger.warning(
                "Personality '%s' in %s replaces the one in %s",
                personality_id,
                folder,
                self.personalities[personality_id].folder,
            )
        self.broken.pop(personality_id, None)
        self.disabled.discard(personality_id)
        self.personalities[personality_id] = personality

    def _index_names(self) -> None:
        by_name: dict[str, list[str]] = {}
        for personality_id, personality in self.personalities.items():
            by_name.setdefault(personality.config.name, []).append(personality_id)
        self._by_name = by_name
        for name, ids in by_name.items():
            if len(ids) > 1:
                logger.info("Personality name '%s' is shared by %s; use their ids", name, ", ".join(sorted(ids)))

    # --- what the key of the request may use (core.model_access) --------------------------------------
    @property
    def name_collisions(self) -> dict[str, list[str]]:
        """``name`` values shared by several personalities the key may use, with their ids."""
        access = ModelAccess.current()
        shared = {
            name: sorted(pid for pid in ids if access.may_use_personality(pid)) for name, ids in self._by_name.items()
        }
        return {name: ids for name, ids in shared.items() if len(ids) > 1}

    def list_broken(self) -> dict[str, str]:
        """Personalities that failed to load, and why, among those the key may use."""
        access = ModelAccess.current()
        return {pid: reason for pid, reason in self.broken.items() if access.may_use_personality(pid)}

    def list_personalities(self) -> dict[str, dict[str, Any]]:
        access = ModelAccess.current()
        return {
            personality_id: p.public_info()
            for personality_id, p in sorted(self.personalities.items())
            if access.may_use_personality(personality_id)
        }

    def get(self, name: str) -> Personality:
        """A personality by id, or by its ``name`` when that is unambiguous, if the key may use it: ForbiddenError
        otherwise, also for a name outside the key's list that names nothing."""
        access = ModelAccess.current()
        try:
            personality = self._find(name)
        except NotFoundError as exc:
            access.check_personality(name)
            visible = not access.restricts_personalities
            raise access.not_found(exc, f"personality '{name}'", visible, PERSONALITY_LIST_HINT) from None
        access.check_personality(personality.id)
        return personality

    def _find(self, name: str) -> Personality:
        if name in self.personalities:
            return self.personalities[name]
        ids = self._by_name.get(name, [])
        if len(ids) == 1:
            return self.personalities[ids[0]]
        if len(ids) > 1:
            raise NotFoundError(f"personality name '{name}' is ambiguous; use one of the ids {', '.join(sorted(ids))}")
        if name in self.disabled:
            raise NotFoundError(f"personality '{name}' is disabled (personalities_config.{name}.enabled)")
        if name in self.broken:
            raise NotFoundError(f"personality '{name}' failed to load: {self.broken[name]}")
        raise NotFoundError(f"personality '{name}' not found")

    async def resolve(self, name: str) -> AppliedPersonality:
        personality = self.get(name)
        if personality.unavailable_reason:
            raise UnavailableError(f"personality '{personality.id}' is unavailable: {personality.unavailable_reason}")
        return personality.applied()
