"""Questions on a terminal, and the questions a ConfigGuard schema setting implies.

Prompts are rich's (``rich.prompt``): line-based, so they work the same over a plain pty, ssh, a serial console,
Windows' console and pexpect, with hidden input for secrets (getpass); rich also draws the review tables.
Arrow-key menus (questionary, prompt_toolkit) need a terminal that answers cursor-position queries and are
harder to script; numbered choices are not."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.prompt import Confirm, Prompt

from lollms_server.core.config_validation import check_setting, is_secret

NULL_WORDS = ("-", "null", "none")


class Asker:
    """The wizard's questions. Enter keeps the value shown in brackets."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(highlight=False)

    def say(self, text: str = "", style: str | None = None) -> None:
        self.console.print(text, style=style, markup=False)

    def heading(self, text: str) -> None:
        self.console.rule(text)

    def text(self, question: str, default: str = "") -> str:
        return Prompt.ask(question, default=default, console=self.console, show_default=bool(default)).strip()

    def secret(self, question: str) -> str:
        return Prompt.ask(question, password=True, default="", show_default=False, console=self.console).strip()

    def confirm(self, question: str, default: bool = False) -> bool:
        return Confirm.ask(question, default=default, console=self.console)

    def choose(self, question: str, options: Sequence[tuple[str, str]], default: str | None = None) -> str:
        """One of ``options`` (key, label), picked by its number or its key."""
        for number, (_, label) in enumerate(options, start=1):
            self.console.print(f"  {number:>2}) {label}", markup=False, highlight=False)
        keys = [key for key, _ in options]
        default_number = str(keys.index(default) + 1) if default in keys else None
        while True:
            answer = (Prompt.ask(question, default=default_number, console=self.console) or "").strip()
            if answer.isdigit() and 1 <= int(answer) <= len(options):
                return keys[int(answer) - 1]
            if answer in keys:
                return answer
            self.say(f"  '{answer}' is not a choice: type a number from 1 to {len(options)}", style="red")

    def integer(self, question: str, default: int, low: int, high: int) -> int:
        while True:
            answer = self.text(question, str(default))
            if answer.lstrip("-").isdigit() and low <= int(answer) <= high:
                return int(answer)
            self.say(f"  a whole number between {low} and {high}, please", style="red")


def parse_answer(answer: str, definition: Mapping[str, Any]) -> Any:
    """A typed answer as the setting's type: numbers, true/false, comma-separated lists, '-' for null."""
    type_name = definition.get("type")
    if answer.lower() in NULL_WORDS and definition.get("nullable"):
        return None
    if type_name == "int":
        return int(answer) if answer.lstrip("-").isdigit() else answer
    if type_name == "float":
        try:
            return float(answer)
        except ValueError:
            return answer
    if type_name == "bool":
        lowered = answer.lower()
        return (
            True if lowered in ("y", "yes", "true", "1") else False if lowered in ("n", "no", "false", "0") else answer
        )
    if type_name == "list":
        return [item.strip() for item in answer.split(",") if item.strip()]
    return answer


def shown_value(value: Any, definition: Mapping[str, Any]) -> str:
    if is_secret(definition):
        return "***" if value else ""
    if value is None:
        return "-"
    if isinstance(value, list):
        return ", ".join(str(item) for item in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def ask_setting(asker: Asker, path: str, definition: Mapping[str, Any], current: Any) -> Any:
    """Ask one setting, its help text first, until the answer is valid; Enter keeps ``current``."""
    help_text = definition.get("help")
    if help_text:
        asker.say(f"  {help_text}", style="dim")
    if definition.get("nullable"):
        asker.say("  ('-' clears it)", style="dim")
    while True:
        if definition.get("options"):
            options = [(str(option), str(option)) for option in definition["options"]]
            if definition.get("nullable"):
                options.append(("-", "- (none)"))
            picked = asker.choose(
                path, options, default=shown_value(current, definition) if current is not None else "-"
            )
            value: Any = None if picked == "-" else picked
        elif is_secret(definition):
            answer = asker.secret(f"{path} (hidden{', Enter keeps it' if current else ''})")
            value = current if not answer else parse_answer(answer, definition)
        elif definition.get("type") == "bool":
            value = asker.confirm(path, default=bool(current))
        else:
            answer = asker.text(path, shown_value(current, definition))
            value = parse_answer(answer, definition) if answer != shown_value(current, definition) else current
        problem = check_setting(path, value, definition)
        if problem is None:
            return value
        asker.say(f"  {problem}", style="red")
