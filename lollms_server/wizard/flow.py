"""The interactive configuration wizard: a folder and format, a preset and the questions of its binding
instances, the server, security, defaults per task, any other section, a review, then the files."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from rich.table import Table

from lollms_server.core.binding_cards import BindingCard
from lollms_server.core.config import MAIN_CONFIG_STEM, hash_api_key
from lollms_server.core.config_paths import find_config_file
from lollms_server.core.config_schema import GENERATION_TYPES, MAIN_SCHEMA
from lollms_server.core.errors import ConfigError
from lollms_server.core.requirements import missing_requirements
from lollms_server.core.secrets import ENCRYPTION_KEY_ENV, generate_key
from lollms_server.wizard.plan import FORMATS, ConfigPlan, Preset, is_loopback, load_presets, new_plan, open_plan
from lollms_server.wizard.questions import Asker, ask_setting, shown_value

# Sections edited by their own steps.
OWN_STEPS = ("server", "security", "defaults", "bindings_map")


def ask_instance(asker: Asker, name: str, plan: ConfigPlan, card: BindingCard, only: tuple[str, ...] | None) -> None:
    """The settings of one instance, from its card's schema: ``only`` these (in that order), or all of them."""
    values = plan.instances[name].values
    schema = card.instance_schema
    settings = (
        only
        if only is not None
        else [key for key in schema if key not in ("__version__", "type", "binding_instance_name")]
    )
    for setting in settings:
        definition = schema.get(setting)
        if isinstance(definition, dict):
            current = values.get(setting, definition.get("default"))
            values[setting] = ask_setting(asker, f"{name}.{setting}", definition, current)


def ask_preset_instances(asker: Asker, plan: ConfigPlan, preset: Preset, cards: Mapping[str, BindingCard]) -> None:
    for name, spec in preset.instances.items():
        card = cards[spec.type_name]
        asker.heading(f"{name}: {card.display_name}")
        asker.say(card.description, style="dim")
        ask_instance(asker, name, plan, card, tuple(s for s in spec.ask if s not in spec.copy_from))
        plan.copy_shared_answers(preset)
        for setting in spec.require:
            while plan.instances[name].values.get(setting) in (None, ""):
                asker.say(f"  {name}.{setting} is needed by this preset", style="red")
                ask_instance(asker, name, plan, card, (setting,))
        if asker.confirm(f"Review the other settings of {name}?", default=False):
            ask_instance(asker, name, plan, card, None)


def ask_server(asker: Asker, plan: ConfigPlan) -> None:
    asker.heading("Server")
    server = plan.section("server")
    host = asker.text(
        "Listen on (127.0.0.1: this machine only; 0.0.0.0: every interface)", server.get("host", "127.0.0.1")
    )
    if not is_loopback(host):
        asker.say("  Every machine that can reach this one will reach the server: keep an API key.", style="yellow")
        if not plan.section("security").get("allowed_api_keys"):
            asker.say("  There is no API key: the configuration is refused until one is added.", style="red")
    server["host"] = host
    plan.set_port(asker.integer("Port", int(server.get("port", 9601)), 1, 65535))


def ask_security(asker: Asker, plan: ConfigPlan, cards: Mapping[str, BindingCard]) -> None:
    asker.heading("Security")
    security = plan.section("security")
    while True:
        keys = security.setdefault("allowed_api_keys", [])
        asker.say(f"{len(keys)} API key(s) are accepted (stored as hashes; new ones are shown once, after saving).")
        action = asker.choose(
            "API keys",
            [
                ("keep", "keep them"),
                ("new", "generate a new key"),
                ("add", "add a key of your own"),
                ("remove", "remove a key"),
            ],
            default="keep",
        )
        if action == "keep":
            break
        if action == "new":
            plan.add_api_key()
        elif action == "add":
            own = asker.secret("Your key (hidden; at least 16 characters)")
            if len(own) < 16:
                asker.say("  too short: at least 16 characters", style="red")
            else:
                keys.append(hash_api_key(own))
        elif action == "remove" and keys:
            labels = [(str(index), f"key {index + 1} ({key[:15]}…)") for index, key in enumerate(keys)]
            removed = int(asker.choose("Remove which key", labels))
            keys.pop(removed)
            if not keys:
                asker.say("  No key left: the server will accept any request (only on 127.0.0.1).", style="yellow")
    secrets_in_clear = plan.plaintext_secrets(cards)
    if plan.encryption_key():
        asker.say("An encryption key is set: secret settings of binding instances are stored encrypted.")
        return
    asker.say(
        "An encryption key makes the binding instances' secrets (API keys of remote services) unreadable on disk. "
        f"It lives in security.encryption_key (this file is private to you) or in the {ENCRYPTION_KEY_ENV} "
        "environment variable, which overrides it."
    )
    if asker.confirm("Generate an encryption key?", default=bool(secrets_in_clear)):
        key = generate_key()
        if asker.confirm(
            "Keep it in the main config file (no: you set the environment variable yourself)?", default=True
        ):
            security["encryption_key"] = key
        else:
            os.environ[ENCRYPTION_KEY_ENV] = key  # for encrypting now; shown once after saving
            plan.new_encryption_key = key


def ask_defaults(asker: Asker, plan: ConfigPlan) -> None:
    asker.heading("Defaults per task")
    defaults = plan.section("defaults")
    names = list(plan.section("bindings_map"))
    for task in [*GENERATION_TYPES, "embedding"]:
        current = defaults.get(f"{task}_binding")
        options = [(name, name) for name in names] + [("-", "- (none)")]
        picked = asker.choose(
            f"{task}: {MAIN_SCHEMA['defaults']['schema'][f'{task}_binding']['help']}", options, default=current or "-"
        )
        defaults[f"{task}_binding"] = None if picked == "-" else picked


def edit_section(asker: Asker, plan: ConfigPlan, section: str) -> None:
    schema = MAIN_SCHEMA[section]
    asker.heading(section)
    asker.say(schema.get("help", ""), style="dim")
    values = plan.section(section)
    if not schema["schema"]:  # keyed entries (model_aliases, personalities_config), checked when saving
        for key, value in values.items():
            asker.say(f"  {key} = {value}")
        asker.say(
            "Entries as name=value (the value read as YAML: {enabled: false}); an empty line ends; '-name' removes one."
        )
        while line := asker.text("entry", ""):
            key, separator, value = line.partition("=")
            if line.startswith("-"):
                values.pop(line[1:].strip(), None)
            elif not separator:
                asker.say("  write name=value", style="red")
            else:
                try:
                    values[key.strip()] = yaml.safe_load(value)
                except yaml.YAMLError as exc:
                    asker.say(f"  the value cannot be read: {exc}", style="red")
        return
    for setting, definition in schema["schema"].items():
        if section == "server" and setting == "port":
            continue  # asked with its origins in the server step
        values[setting] = ask_setting(
            asker, f"{section}.{setting}", definition, values.get(setting, definition.get("default"))
        )


def manage_instances(asker: Asker, plan: ConfigPlan, cards: Mapping[str, BindingCard]) -> None:
    while True:
        asker.heading("Binding instances")
        for name, instance in plan.instances.items():
            asker.say(f"  {name}: {instance.type_name}")
        action = asker.choose(
            "Instances",
            [("done", "done"), ("add", "add one"), ("edit", "edit one"), ("remove", "remove one")],
            default="done",
        )
        if action == "done":
            return
        if action == "add":
            type_name = asker.choose(
                "Binding type", [(name, f"{name}: {card.display_name}") for name, card in sorted(cards.items())]
            )
            name = asker.text("Instance name", type_name.removesuffix("_binding"))
            try:
                plan.add_instance(name, type_name)
            except ConfigError as exc:
                asker.say("\n".join(exc.problems), style="red")
                continue
            ask_instance(asker, name, plan, cards[type_name], None)
        elif plan.instances:
            name = asker.choose("Which", [(name, name) for name in plan.instances])
            if action == "edit":
                ask_instance(asker, name, plan, cards[plan.instances[name].type_name], None)
            elif asker.confirm(f"Remove {name}?", default=False):
                plan.remove_instance(name)


def review(asker: Asker, plan: ConfigPlan, cards: Mapping[str, BindingCard]) -> None:
    table = Table(title=f"{plan.path}", show_lines=False)
    table.add_column("setting")
    table.add_column("value")
    for section, definition in MAIN_SCHEMA.items():
        if section == "__version__":
            continue
        values = plan.main.get(section) or {}
        for key, value in values.items():
            setting = definition["schema"].get(key, {}) if definition["schema"] else {}
            table.add_row(f"{section}.{key}", shown_value(value, setting) if setting else str(value))
    for name, instance in plan.instances.items():
        schema = cards[instance.type_name].instance_schema
        for key, value in instance.values.items():
            setting = schema.get(key, {}) if isinstance(schema.get(key), dict) else {}
            table.add_row(f"instances.{name}.{key}", shown_value(value, setting) if setting else str(value))
    asker.console.print(table)


def offer_requirements(asker: Asker, plan: ConfigPlan, cards: Mapping[str, BindingCard]) -> None:
    """Ask, for each chosen binding type whose packages are missing, whether to install them now."""
    from lollms_server.installing import install_packages

    for type_name in sorted({instance.type_name for instance in plan.instances.values()}):
        missing = missing_requirements(cards[type_name].requirements)
        if not missing:
            continue
        if asker.confirm(f"{type_name} needs {', '.join(missing)}. Install now?", default=False):
            try:
                install_packages(sys.executable, [item.split(" (")[0] for item in missing])
            except Exception as exc:  # a failed pip run: say so, the configuration is saved anyway
                asker.say(f"  installation failed: {exc}", style="red")
        else:
            asker.say(f"  later: lollms-server install-requirements {type_name}", style="dim")


def start(asker: Asker, folder: Path, cards_for: Any) -> ConfigPlan | None:
    """The plan to work on: a new one (a preset), a replacement of an existing one, or the existing one."""
    existing = find_config_file(folder, MAIN_CONFIG_STEM) if folder.is_dir() else None
    cards = cards_for(folder)
    if existing is not None:
        asker.say(f"A configuration exists: {existing}")
        action = asker.choose(
            "What now",
            [("edit", "open it and edit it"), ("replace", "replace it (a backup is kept)"), ("quit", "quit")],
            default="edit",
        )
        if action == "quit":
            return None
        if action == "edit":
            return open_plan(existing, cards)
    file_format = asker.choose("File format", [(name, name) for name in FORMATS], default="yaml")
    plan = new_plan(folder, file_format)
    plan.existing_path = existing
    presets = load_presets()
    options = [(name, f"{preset.title}") for name, preset in presets.items()] + [
        ("manual", "Manual: no binding instance yet")
    ]
    picked = asker.choose("Preset", options, default="offline")
    if picked != "manual":
        preset = presets[picked]
        asker.say(preset.description, style="dim")
        plan.apply_preset(preset, cards)
        ask_preset_instances(asker, plan, preset, cards)
    return plan


def run(asker: Asker, folder: Path, cards_for: Any) -> int:
    """The whole interactive wizard; nothing is written before the final confirmation."""
    plan = start(asker, folder, cards_for)
    if plan is None:
        return 1
    cards = cards_for(plan.folder)
    if plan.existing_path is None or plan.new_api_keys:  # a new configuration: the essential steps
        ask_server(asker, plan)
        ask_security(asker, plan, cards)
    while True:
        sections = [("save", "review and save"), ("instances", "binding instances"), ("server", "server (host, port)")]
        sections += [("security", "security (API keys, encryption)"), ("defaults", "defaults per task")]
        sections += [(name, name) for name in MAIN_SCHEMA if name not in ("__version__", *OWN_STEPS)]
        sections.append(("quit", "quit without saving"))
        choice = asker.choose("Edit", sections, default="save")
        if choice == "quit":
            asker.say("Nothing was written.")
            return 1
        if choice == "save":
            review(asker, plan, cards)
            problems = plan.problems(cards)
            if problems:
                asker.say("Fix these first:", style="red")
                for problem in problems:
                    asker.say(f"  - {problem}", style="red")
                continue
            clear = plan.plaintext_secrets(cards)
            if clear:
                asker.say(
                    f"Without an encryption key these secrets are stored in plain text: {', '.join(clear)}",
                    style="yellow",
                )
            replacing = f" (replacing {plan.path}; a backup is kept)" if plan.path.exists() else ""
            if not asker.confirm(f"Save{replacing}?", default=True):
                continue
            break
        if choice == "instances":
            manage_instances(asker, plan, cards)
        elif choice == "server":
            ask_server(asker, plan)
        elif choice == "security":
            ask_security(asker, plan, cards)
        elif choice == "defaults":
            ask_defaults(asker, plan)
        else:
            edit_section(asker, plan, choice)
    for line in plan.write(cards):
        asker.say(line)
    announce_keys(asker, plan)
    offer_requirements(asker, plan, cards)
    return 0


def announce_keys(asker: Asker, plan: ConfigPlan) -> None:
    for key in plan.new_api_keys:
        asker.say("API key (shown only this once; the file keeps only its hash):")
        asker.say(f"    {key}", style="bold")
    if plan.new_encryption_key:
        asker.say("Encryption key: set it before starting the server (shown only this once):")
        asker.say(f"    export {ENCRYPTION_KEY_ENV}={plan.new_encryption_key}", style="bold")
