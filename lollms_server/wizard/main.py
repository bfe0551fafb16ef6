"""``configuration_wizard.py`` / ``lollms-server wizard``: interactive on a terminal; with ``--preset`` (and
``--set``, ``--yes``) it writes the same files without asking anything."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lollms_server.core.binding_cards import BindingCard
from lollms_server.core.config import MAIN_CONFIG_STEM, builtin_zoo_dir
from lollms_server.core.config_paths import find_config_file
from lollms_server.core.errors import ConfigError
from lollms_server.core.secrets import ENCRYPTION_KEY_ENV
from lollms_server.wizard.plan import (
    FORMATS,
    ConfigPlan,
    binding_cards,
    default_folder,
    load_presets,
    new_plan,
    open_plan,
)

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")


def _err(text: str) -> None:
    sys.stderr.write(text + "\n")


def cards_for(folder: Path) -> dict[str, BindingCard]:
    """The binding types a configuration in ``folder`` can use: the built-in ones and its personal ones (in the
    folder, or at a checkout's top when the folder is inside one)."""
    candidates = [folder / "personal_bindings", folder.resolve().parent / "personal_bindings"]
    personal = next((candidate for candidate in candidates if candidate.is_dir()), None)
    return binding_cards(builtin_zoo_dir() / "bindings", personal)


def build_parser() -> argparse.ArgumentParser:
    presets = load_presets()
    parser = argparse.ArgumentParser(
        prog="configuration_wizard.py",
        description="Create or edit the lollms_server configuration. Interactive on a terminal; non-interactive "
        "with --preset (and --set, --yes).",
        epilog="presets: " + "; ".join(f"{name} ({preset.title})" for name, preset in presets.items()),
    )
    parser.add_argument(
        "--folder", type=Path, help="configuration folder (default: $LOLLMS_CONFIG_DIR or ./lollms_configs)"
    )
    parser.add_argument("--format", choices=list(FORMATS), default="yaml", help="file format of a new configuration")
    parser.add_argument("--preset", choices=list(presets), help="write this preset without asking")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="section.key=value or instances.NAME.setting=value (repeatable; values read as YAML)",
    )
    parser.add_argument("--yes", action="store_true", help="replace an existing configuration (after a backup)")
    parser.add_argument("--list-presets", action="store_true", help="list the presets and exit")
    return parser


def non_interactive(args: argparse.Namespace) -> int:
    folder = args.folder or default_folder()
    cards = cards_for(folder)
    existing = find_config_file(folder, MAIN_CONFIG_STEM) if folder.is_dir() else None
    if existing is not None and args.preset and not args.yes:
        _err(f"{existing} exists; add --yes to replace it (a backup is kept), or edit it interactively.")
        return 1
    plan: ConfigPlan
    required: dict[str, tuple[str, ...]] = {}
    if args.preset:
        plan = new_plan(folder, args.format)
        plan.existing_path = existing
        preset = load_presets()[args.preset]
        plan.apply_preset(preset, cards)
        required = {name: spec.require for name, spec in preset.instances.items()}
    else:  # --set alone edits the existing configuration
        if existing is None:
            _err("no configuration to edit: give --preset")
            return EXIT_USAGE
        plan = open_plan(existing, cards)
    try:
        for assignment in args.set:
            plan.set_value(assignment, cards)
        if args.preset:
            plan.copy_shared_answers(load_presets()[args.preset])
        problems = plan.problems(cards, required)
        if problems:
            raise ConfigError(problems)
        report = plan.write(cards)
    except ConfigError as exc:
        _err("nothing was written:")
        for problem in exc.problems:
            _err(f"  - {problem}")
        return EXIT_USAGE
    for line in report:
        _out(line)
    for key in plan.new_api_keys:
        _out("API key (shown only this once; the file keeps only its hash):")
        _out(f"    {key}")
    clear = plan.plaintext_secrets(cards)
    if clear:
        _err(
            f"note: stored in plain text (private file): {', '.join(clear)}; set security.encryption_key or "
            f"{ENCRYPTION_KEY_ENV} and run `lollms-server encrypt-secrets` to encrypt them"
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _main(args)
    except ConfigError as exc:  # an unusable configuration folder or file: one line each, nothing written
        for problem in exc.problems:
            _err(problem)
        return EXIT_USAGE


def _main(args: argparse.Namespace) -> int:
    if args.list_presets:
        for name, preset in load_presets().items():
            _out(f"{name}: {preset.title}\n    {preset.description}")
        return 0
    if args.preset or args.set:
        return non_interactive(args)
    if not sys.stdin.isatty():
        _err(
            "The wizard asks questions and there is no terminal. Without one, use --preset NAME [--set KEY=VALUE ...] "
            "[--yes] (see --help and --list-presets)."
        )
        return EXIT_USAGE
    from lollms_server.wizard.flow import run
    from lollms_server.wizard.questions import Asker

    asker = Asker()
    try:
        folder = args.folder or Path(asker.text("Configuration folder", str(default_folder()))).expanduser()
        return run(asker, folder, cards_for)
    except (KeyboardInterrupt, EOFError):
        _err("\nInterrupted: nothing was written.")
        return EXIT_INTERRUPTED
