"""``lollms-server instances``: add, show, list, edit and remove binding instances, validated against the card,
secrets encrypted when a key is set, bindings_map kept in step, replaced files backed up."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lollms_server import cli
from lollms_server.core.secrets import generate_key
from lollms_server.wizard.main import main as wizard

SECRET = "sk-instance-secret-5678"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    folder = tmp_path / "conf"
    key = generate_key()
    assert wizard(["--folder", str(folder), "--preset", "offline", "--set", f"security.encryption_key={key}"]) == 0
    return folder


def run(folder: Path, *args: str) -> int:
    return cli.main(["--config", str(folder), "instances", *args])


def test_add_show_edit_remove(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert (
        run(
            folder,
            "add",
            "remote",
            "--type",
            "openai_binding",
            "--set",
            f"api_key={SECRET}",
            "--set",
            "context_size=8192",
        )
        == 0
    )
    stored = (folder / "bindings" / "remote.yaml").read_text()
    assert SECRET not in stored and "fernet:" in stored and "context_size: 8192" in stored
    assert yaml.safe_load((folder / "main_config.yaml").read_text())["bindings_map"]["remote"] == "openai_binding"
    assert list(folder.glob("main_config.yaml.wizard*.bak"))  # the main config was backed up before
    capsys.readouterr()
    assert run(folder, "show", "remote") == 0
    shown = capsys.readouterr().out
    assert "api_key: ***" in shown and SECRET not in shown
    assert run(folder, "edit", "remote", "--set", "default_model=gpt-4.1-mini") == 0
    assert yaml.safe_load((folder / "bindings" / "remote.yaml").read_text())["default_model"] == "gpt-4.1-mini"
    assert list((folder / "bindings").glob("remote.yaml.wizard*.bak.fernet"))  # a backup of a secret is encrypted
    capsys.readouterr()
    assert run(folder, "list") == 0
    assert "remote: openai_binding" in capsys.readouterr().out
    assert run(folder, "remove", "remote") == 0
    assert "remote" not in yaml.safe_load((folder / "main_config.yaml").read_text())["bindings_map"]
    assert not (folder / "bindings" / "remote.yaml").exists()
    assert cli.main(["--config", str(folder), "check-config"]) == 0


def test_bad_values_and_unknown_names_write_nothing(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = {path: path.read_bytes() for path in folder.rglob("*") if path.is_file()}
    assert run(folder, "add", "remote", "--type", "openai_binding", "--set", "context_size=lots") == 2
    assert "context_size" in capsys.readouterr().err
    assert run(folder, "add", "remote", "--type", "no_such_binding") == 2
    assert "unknown binding type 'no_such_binding'" in capsys.readouterr().err
    assert run(folder, "add", "llamacpp", "--type", "llamacpp_binding", "--set", "n_ctx=1024") == 2
    assert "exists" in capsys.readouterr().err
    assert run(folder, "edit", "ghost", "--set", "n_ctx=1") == 2
    assert "no instance 'ghost'" in capsys.readouterr().err
    assert run(folder, "edit", "llamacpp", "--set", "no_such_setting=1") == 2
    assert "unknown setting 'no_such_setting'" in capsys.readouterr().err
    assert {path: path.read_bytes() for path in folder.rglob("*") if path.is_file()} == before
