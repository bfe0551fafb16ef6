#!/usr/bin/env python3
"""Interactive creation of the main configuration (a minimal wizard: folder, format, host, port, key).

The server itself never asks anything: without a config it writes a secure default. This wizard is for
operators who want to choose. It never overwrites an existing configuration.
"""

from __future__ import annotations

import sys
from pathlib import Path

from lollms_server.core.config import DEFAULT_CONFIG_DIR_NAME, MAIN_CONFIG_STEM, create_default_config
from lollms_server.core.config_files import find_config_file
from lollms_server.core.errors import ConfigError

FORMATS = {"yaml": ".yaml", "toml": ".toml", "json": ".json", "sqlite": ".db"}


def ask(question: str, default: str) -> str:
    answer = input(f"{question} [{default}]: ").strip()
    return answer or default


def ask_int(question: str, default: int, low: int, high: int) -> int:
    while True:
        answer = ask(question, str(default))
        if answer.isdigit() and low <= int(answer) <= high:
            return int(answer)
        print(f"  please enter a whole number between {low} and {high}")


def main() -> int:
    folder = Path(ask("Configuration folder", DEFAULT_CONFIG_DIR_NAME)).expanduser()
    try:
        existing = find_config_file(folder, MAIN_CONFIG_STEM) if folder.is_dir() else None
    except ConfigError as exc:  # an unusable main_config.* (a dangling link, two formats...): say so, write nothing
        print("\n".join(exc.problems))
        return 2
    if existing:
        print(f"{existing} already exists; edit it directly or move it away first.")
        return 1
    file_format = ask(f"File format ({', '.join(FORMATS)})", "yaml")
    while file_format not in FORMATS:
        file_format = ask(f"  one of {', '.join(FORMATS)}", "yaml")
    host = ask("Listen on (127.0.0.1 = this machine only, 0.0.0.0 = every interface)", "127.0.0.1")
    port = ask_int("Port", 9601, 1, 65535)
    path = folder / f"{MAIN_CONFIG_STEM}{FORMATS[file_format]}"
    try:
        api_key = create_default_config(path, {"server": {"host": host, "port": port}})
    except ConfigError as exc:
        print("\n".join(exc.problems))
        return 1
    print(f"\nWrote {path}")
    print("Your API key (shown only this once; the file keeps only its hash):")
    print(f"    {api_key}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
