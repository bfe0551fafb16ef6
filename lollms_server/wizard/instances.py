"""``lollms-server instances list|show|add|edit|remove``: binding instances validated against their card's
schema, secrets encrypted when a key is set, ``bindings_map`` kept in step, every replaced file backed up.

``add``/``edit`` take ``--set setting=value``; on a terminal without ``--set`` they ask each setting with the
card's help text (hidden input for secrets)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from lollms_server.core.binding_cards import BindingCard
from lollms_server.core.errors import ConfigError
from lollms_server.wizard.main import cards_for
from lollms_server.wizard.plan import ConfigPlan, InstancePlan, open_plan
from lollms_server.wizard.questions import shown_value

Cards = Mapping[str, BindingCard]

EXIT_PROBLEM = 2


def _say(text: str) -> None:
    sys.stdout.write(text + "\n")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(title="actions", dest="action", required=True)
    actions.add_parser("list", help="the instances of bindings_map, with their type")
    show = actions.add_parser("show", help="an instance's settings (secrets as ***)")
    show.add_argument("name")
    add = actions.add_parser("add", help="a new instance of a binding type")
    add.add_argument("name")
    add.add_argument("--type", required=True, dest="type_name", help="binding type, e.g. ollama_binding")
    edit = actions.add_parser("edit", help="change an instance's settings")
    edit.add_argument("name")
    for sub in (add, edit):
        sub.add_argument("--set", action="append", default=[], metavar="SETTING=VALUE", help="repeatable")
    remove = actions.add_parser("remove", help="remove an instance (its file is backed up, then deleted)")
    remove.add_argument("name")


def run(args: argparse.Namespace, path: Path) -> int:
    cards = cards_for(path.parent)
    try:
        plan = open_plan(path, cards)
        action: Callable[[ConfigPlan], int] = {
            "list": lambda plan: _list(plan),
            "show": lambda plan: _show(plan, args.name, cards),
            "add": lambda plan: _change(plan, args, cards, new=True),
            "edit": lambda plan: _change(plan, args, cards, new=False),
            "remove": lambda plan: _remove(plan, args.name, cards),
        }[args.action]
        return action(plan)
    except ConfigError as exc:
        for problem in exc.problems:
            sys.stderr.write(f"{problem}\n")
        return EXIT_PROBLEM
    except (KeyboardInterrupt, EOFError):
        sys.stderr.write("\nInterrupted: nothing was written.\n")
        return 130


def _list(plan: ConfigPlan) -> int:
    defaults = plan.section("defaults")
    for name, type_name in plan.section("bindings_map").items():
        uses = [key.removesuffix("_binding") for key, value in defaults.items() if value == name]
        where = plan.instances[name].path if name in plan.instances else "(no file)"
        _say(f"{name}: {type_name} — {where}" + (f" — default for {', '.join(uses)}" if uses else ""))
    return 0


def _show(plan: ConfigPlan, name: str, cards: Cards) -> int:
    instance = _existing(plan, name)
    schema = cards[instance.type_name].instance_schema if instance.type_name in cards else {}
    for key, value in instance.values.items():
        definition = schema.get(key)
        _say(f"{key}: {shown_value(value, definition) if isinstance(definition, dict) else value}")
    return 0


def _existing(plan: ConfigPlan, name: str) -> InstancePlan:
    if name not in plan.instances:
        known = ", ".join(plan.instances) or "none"
        raise ConfigError([f"no instance '{name}' (instances: {known})"])
    return plan.instances[name]


def _change(plan: ConfigPlan, args: argparse.Namespace, cards: Cards, new: bool) -> int:
    if new:
        if args.name in plan.instances or args.name in plan.section("bindings_map"):
            raise ConfigError([f"instance '{args.name}' exists; use `instances edit {args.name}`"])
        if args.type_name not in cards:
            raise ConfigError([f"unknown binding type '{args.type_name}'; known: {', '.join(sorted(cards))}"])
        plan.add_instance(args.name, args.type_name)
    instance = _existing(plan, args.name)
    for assignment in args.set:
        plan.set_value(f"instances.{args.name}.{assignment}", cards)
    if not args.set:
        if not sys.stdin.isatty():
            raise ConfigError(["no terminal to ask on: give the settings with --set SETTING=VALUE"])
        from lollms_server.wizard.flow import ask_instance
        from lollms_server.wizard.questions import Asker

        ask_instance(Asker(), args.name, plan, cards[instance.type_name], None)
    for line in plan.write(cards, instances=[args.name], main=new):
        _say(line)
    clear = [entry for entry in plan.plaintext_secrets(cards) if entry.startswith(f"{args.name}.")]
    if clear:
        sys.stderr.write(f"note: {', '.join(clear)} stored in plain text (no encryption key is set)\n")
    return 0


def _remove(plan: ConfigPlan, name: str, cards: Cards) -> int:
    if name not in plan.section("bindings_map"):
        raise ConfigError([f"no instance '{name}' in bindings_map"])
    plan.remove_instance(name)
    for line in plan.write(cards, instances=[]):
        _say(line)
    return 0
