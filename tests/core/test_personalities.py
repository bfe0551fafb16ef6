"""PersonalityManager over the real community zoo and over broken, disabled and scripted personalities."""

from __future__ import annotations

import textwrap
import time
from pathlib import Path

import pytest
import yaml

from lollms_server.core.config import builtin_zoo_dir
from lollms_server.core.errors import NotFoundError, UnavailableError
from lollms_server.core.personalities import PersonalityManager
from tests.helpers import shared_data


def write_personality(root: Path, folder: str, config: dict | str, workflow: str | None = None) -> Path:
    target = root / folder
    target.mkdir(parents=True)
    text = config if isinstance(config, str) else yaml.safe_dump(config)
    (target / "config.yaml").write_text(text, encoding="utf-8")
    if workflow is not None:
        (target / "scripts").mkdir()
        (target / "scripts" / "workflow.py").write_text(textwrap.dedent(workflow), encoding="utf-8")
    return target


def basic(name: str, **extra: object) -> dict:
    return {"name": name, "personality_conditioning": f"You are {name}.", **extra}


def test_the_whole_community_zoo_loads() -> None:
    manager = PersonalityManager([(shared_data("data/lollms_personalities_zoo"), "personal")])
    started = time.perf_counter()
    manager.load()
    elapsed = time.perf_counter() - started
    print(f"\nloaded {len(manager.personalities)} community personalities in {elapsed:.2f}s")
    assert manager.broken == {}
    assert len(manager.personalities) == 486
    assert manager.name_collisions  # colliding names are reported...
    ids = manager.list_personalities()
    assert len(ids) == 486  # ...and every personality still has its own id
    # Folder names that collide get their path as id; others keep the folder name.
    assert "socrates" in ids and "job/historian" in ids and "historian" not in ids
    socrates = manager.get("Socrates")  # by name, when unambiguous
    assert socrates.id == "socrates" and socrates.config.version == "1.0.0"
    assert socrates.parameters["temperature"] == 0.6 and "!@>User" in socrates.parameters["stop"]
    assert "welcome_message" not in socrates.config.extra_settings()  # a known field...
    with_commands = next(p for p in manager.personalities.values() if "commands" in p.config.extra_settings())
    assert with_commands.config.extra_settings()["commands"]  # ...and community extras are kept
    with pytest.raises(NotFoundError, match="ambiguous"):
        manager.get("Captain Jack Sparrow")


def test_broken_personalities_are_isolated_with_reasons(tmp_path: Path) -> None:
    write_personality(tmp_path, "good", basic("good"))
    write_personality(tmp_path, "bad_yaml", "name: [unclosed\n")
    write_personality(tmp_path, "no_conditioning", {"name": "silent"})
    write_personality(tmp_path, "import_error", basic("x"), "import not_a_real_module_xyz\n")
    write_personality(tmp_path, "no_entry", basic("y"), "async def something_else(): pass\n")
    write_personality(tmp_path, "sync_entry", basic("z"), "def run_workflow(prompt, params, context): pass\n")
    write_personality(tmp_path, "bad_params", basic("w", model_temperature="hot"))
    manager = PersonalityManager([(tmp_path, "personal")])
    manager.load()
    assert set(manager.personalities) == {"good"}
    reasons = manager.broken
    assert "cannot be read" in reasons["bad_yaml"]
    assert "personality_conditioning" in reasons["no_conditioning"]
    assert "ModuleNotFoundError" in reasons["import_error"]
    assert "no run_workflow" in reasons["no_entry"]
    assert "async def run_workflow" in reasons["sync_entry"]
    assert "model_temperature" in reasons["bad_params"]
    with pytest.raises(NotFoundError, match="failed to load"):
        manager.get("bad_yaml")


async def test_disabled_and_unavailable_personalities(tmp_path: Path) -> None:
    write_personality(tmp_path, "off", basic("off"))
    write_personality(tmp_path, "opt_in", basic("opt_in", enabled_by_default=False))
    write_personality(tmp_path, "opt_in_enabled", basic("opt_in_enabled", enabled_by_default=False))
    write_personality(tmp_path, "needs", basic("needs", dependencies=["surely-missing-package-xyz"]))
    overrides = {"off": {"enabled": False}, "opt_in_enabled": {"enabled": True}}
    manager = PersonalityManager([(tmp_path, "personal")], overrides)
    manager.load()
    assert set(manager.list_personalities()) == {"opt_in_enabled", "needs"}
    with pytest.raises(NotFoundError, match="disabled"):
        await manager.resolve("off")
    with pytest.raises(NotFoundError, match="disabled"):
        await manager.resolve("opt_in")
    info = manager.list_personalities()["needs"]
    assert info["available"] is False and "surely-missing-package-xyz" in info["unavailable_reason"]
    with pytest.raises(UnavailableError, match="install-personality-deps needs"):
        await manager.resolve("needs")


def test_builtin_zoo_and_personal_override(tmp_path: Path) -> None:
    write_personality(tmp_path, "lollms", basic("my own lollms"))
    manager = PersonalityManager([(builtin_zoo_dir() / "personalities", "builtin"), (tmp_path, "personal")])
    manager.load()
    listed = manager.list_personalities()
    assert {"artbot", "tool_assistant", "lollms"} <= set(listed)
    assert "python_builder_executor" not in listed  # runs generated code: off unless enabled
    assert listed["lollms"]["name"] == "my own lollms" and listed["lollms"]["source"] == "personal"
    assert listed["artbot"]["is_scripted"] is True and listed["artbot"]["icon_url"].endswith("/artbot/icon")
    for field in (
        "name",
        "author",
        "version",
        "description",
        "category",
        "language",
        "tags",
        "icon",
        "is_scripted",
        "path",
        "available",
    ):
        assert field in listed["artbot"]


async def test_a_workflow_can_say_it_cannot_run_here(tmp_path: Path) -> None:
    """A workflow's optional ``unavailable_reason()`` (e.g. no sandbox for generated code) is asked once at load:
    the personality is listed unavailable with that reason and refused with 503."""
    workflow = """
        def unavailable_reason():
            return "no sandbox: install bubblewrap"

        async def run_workflow(prompt, params, context):
            return "never"
    """
    write_personality(tmp_path, "coder", basic("coder"), workflow)
    manager = PersonalityManager([(tmp_path, "personal")])
    manager.load()
    listed = manager.list_personalities()["coder"]
    assert listed["available"] is False and listed["unavailable_reason"] == "no sandbox: install bubblewrap"
    with pytest.raises(UnavailableError, match="no sandbox"):
        await manager.resolve("coder")
