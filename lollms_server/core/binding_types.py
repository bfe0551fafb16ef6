"""Discovery of binding types: folders with ``binding_card.yaml`` and ``__init__.py``.

Built-in types (the zoo) and the operator's personal types are found the same way. A broken type is
recorded with its reason instead of stopping the server.
"""

from __future__ import annotations

import inspect
import logging
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lollms_server.core.binding_cards import CARD_FILE, BindingCard, load_card
from lollms_server.core.bindings import Binding
from lollms_server.core.errors import ConfigError
from lollms_server.core.plugin_import import import_file
from lollms_server.core.requirements import missing_requirements

logger = logging.getLogger(__name__)


@dataclass
class BindingType:
    """One discovered binding type, usable or not."""

    type_name: str
    folder: Path
    source: str
    card: BindingCard | None = None
    cls: type[Binding] | None = None
    error: str | None = None
    missing_requirements: list[str] = field(default_factory=list)
    import_failed_for_missing_requirements: bool = False

    @property
    def not_installed(self) -> bool:
        """An optional binding whose packages are not installed (nothing wrong with it otherwise)."""
        return bool(self.missing_requirements) and (self.error is None or self.import_failed_for_missing_requirements)

    @property
    def usable(self) -> bool:
        return self.cls is not None and self.error is None

    def public_info(self) -> dict[str, Any]:
        info: dict[str, Any] = self.card.public_info() if self.card else {"type_name": self.type_name}
        info.update(
            {
                "source": self.source,
                "path": str(self.folder),
                "status": "ok" if self.usable and not self.missing_requirements else "error",
                "error": self.error,
                "missing_requirements": list(self.missing_requirements),
            }
        )
        return info


def _find_binding_class(module: Any, type_name: str) -> type[Binding]:
    candidates = [
        obj
        for _, obj in inspect.getmembers(module, inspect.isclass)
        if issubclass(obj, Binding) and obj is not Binding and obj.__module__.startswith(module.__name__)
    ]
    for candidate in candidates:
        if candidate.binding_type_name == type_name and not inspect.isabstract(candidate):
            return candidate
    found = ", ".join(f"{c.__name__} (binding_type_name={c.binding_type_name!r})" for c in candidates)
    raise ConfigError(
        [
            f"no concrete Binding subclass with binding_type_name == '{type_name}' (the card's type_name); "
            f"found: {found or 'none'}"
        ]
    )


def capability_problems(cls: type[Binding], card: BindingCard) -> list[str]:
    """Where the class's declared capabilities and its card disagree (or the class declares none)."""
    problems = []
    for attribute, method, card_field in (
        ("input_modalities", "get_supported_input_modalities", "supported_input_modalities"),
        ("output_modalities", "get_supported_output_modalities", "supported_output_modalities"),
    ):
        declared = getattr(cls, attribute)
        overridden = getattr(cls, method) is not getattr(Binding, method)
        if declared is None and not overridden:
            problems.append(f"the class declares no {attribute}: set it, or implement {method}()")
        elif declared is not None and set(declared) != set(getattr(card, card_field)):
            problems.append(
                f"the class's {attribute} {sorted(declared)} disagree with the card's {card_field} "
                f"{sorted(getattr(card, card_field))}"
            )
    class_tasks = "not declared" if cls.tasks is None else sorted(cls.tasks)
    card_tasks = "not declared" if card.supported_tasks is None else sorted(card.supported_tasks)
    if class_tasks != card_tasks:
        problems.append(f"the class's tasks ({class_tasks}) disagree with the card's supported_tasks ({card_tasks})")
    if cls.streams is not None and cls.streams != card.supports_streaming:
        problems.append(f"the class's streams = {cls.streams} disagrees with the card's supports_streaming")
    if cls.streams and cls.generate_stream is Binding.generate_stream:
        problems.append("the class says it streams but does not implement generate_stream()")
    return problems


def _load_type(folder: Path, source: str) -> BindingType:
    entry = BindingType(type_name=folder.name, folder=folder, source=source)
    try:
        entry.card = load_card(folder)
    except ConfigError as exc:
        entry.error = "; ".join(exc.problems)
        return entry
    entry.type_name = entry.card.type_name
    entry.missing_requirements = missing_requirements(entry.card.requirements)
    module_name = f"_lollms_binding_{source}_{folder.name.replace('-', '_').replace(' ', '_')}"
    try:
        module = import_file(folder / "__init__.py", module_name, package_folder=folder)
        entry.cls = _find_binding_class(module, entry.type_name)
        problems = capability_problems(entry.cls, entry.card)
        if problems:
            raise ConfigError(problems)
    except ConfigError as exc:
        entry.error = "; ".join(exc.problems)
    except Exception as exc:
        hint = ""
        if isinstance(exc, ImportError) and entry.missing_requirements:
            hint = f" (missing requirements: {', '.join(entry.missing_requirements)})"
            entry.import_failed_for_missing_requirements = True
        entry.error = f"import failed: {type(exc).__name__}: {exc}{hint}"
        logger.debug("Import of binding %s failed:\n%s", folder, traceback.format_exc())
    return entry


def discover_binding_types(folders: list[tuple[Path, str]]) -> dict[str, BindingType]:
    """Binding types found in ``(folder, source)`` pairs; a later folder's type overrides an earlier one."""
    types: dict[str, BindingType] = {}
    for root, source in folders:
        if not root.is_dir():
            continue
        for folder in sorted(root.iterdir()):
            if not folder.is_dir() or not (folder / CARD_FILE).is_file() or not (folder / "__init__.py").is_file():
                continue
            entry = _load_type(folder, source)
            if entry.type_name in types:
                logger.warning(
                    "Binding type '%s' in %s overrides the one in %s",
                    entry.type_name,
                    folder,
                    types[entry.type_name].folder,
                )
            types[entry.type_name] = entry
            if entry.error and not entry.not_installed:
                logger.error("Binding type '%s' (%s) is unusable: %s", entry.type_name, folder, entry.error)
    not_installed = [entry for entry in types.values() if entry.not_installed]
    if not_installed:  # optional bindings: one line, not an error per type
        logger.info(
            "Optional binding types not installed: %s; install one with `lollms-server install-requirements TYPE`",
            ", ".join(f"{entry.type_name} ({', '.join(entry.missing_requirements)})" for entry in not_installed),
        )
    return types
