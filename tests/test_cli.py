"""The real command line: first run writes a config and serves; a bad config stops it with clear lines."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import yaml

from tests.core.test_binding_manager import free_port

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "LOLLMS_CONFIG_DIR"}
    return subprocess.run(
        [sys.executable, "-m", "lollms_server", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_first_run_writes_a_secure_config_and_serves(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "LOLLMS_CONFIG_DIR"}
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "lollms_server" / "main.py"), "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        health = None
        while time.monotonic() < deadline:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        assert health is not None and health.json()["api_key_required"] is True
        assert httpx.get(f"http://127.0.0.1:{port}/api/v1/list_bindings").status_code == 403
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=20)
    config_file = tmp_path / "lollms_configs" / "main_config.yaml"
    values = yaml.safe_load(config_file.read_text())
    assert values["server"]["host"] == "127.0.0.1"
    key_line = next(line for line in stderr.splitlines() if line.strip().startswith("lollms_"))
    assert key_line.strip() not in config_file.read_text()
    assert values["security"]["allowed_api_keys"][0].startswith("sha256:")


def test_bad_config_stops_with_one_line_per_problem(tmp_path: Path) -> None:
    config_dir = tmp_path / "lollms_configs"
    config_dir.mkdir()
    bad = "__version__: 1.0.0\nserver:\n  port: 0\n  colour: blue\nresource_manager:\n  gpu_strategy: turbo\n"
    (config_dir / "main_config.yaml").write_text(bad)
    result = run_cli("check-config", cwd=tmp_path)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.startswith("  - ")]
    assert len(lines) == 3
    assert any("server.port = 0" in line and "between 1 and 65535" in line for line in lines)
    assert (config_dir / "main_config.yaml").read_text() == bad


def test_generate_and_hash_key_commands(tmp_path: Path) -> None:
    key = run_cli("generate-key", cwd=tmp_path).stdout.strip()
    assert len(key) == 44
    hashed = run_cli("hash-key", "abc", cwd=tmp_path).stdout.strip()
    assert hashed == "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_wizard_writes_the_chosen_format_and_never_overwrites(tmp_path: Path) -> None:
    answers = "conf\ntoml\n0.0.0.0\n9700\n"
    wizard = [sys.executable, str(ROOT / "configuration_wizard.py")]
    result = subprocess.run(wizard, cwd=tmp_path, input=answers, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    written = tmp_path / "conf" / "main_config.toml"
    assert 'host = "0.0.0.0"' in written.read_text() and "port = 9700" in written.read_text()
    before = written.read_bytes()
    again = subprocess.run(wizard, cwd=tmp_path, input=answers, capture_output=True, text=True, timeout=60)
    assert again.returncode == 1 and "already exists" in again.stdout
    assert written.read_bytes() == before


def test_install_personality_deps_reports_and_refuses_unknown(tmp_path: Path) -> None:
    config_dir = tmp_path / "conf"
    assert run_cli("check-config", "--config", str(config_dir), cwd=tmp_path).returncode == 2  # no file yet
    from lollms_server.core.config import create_default_config

    create_default_config(config_dir / "main_config.yaml")
    ok = run_cli("install-personality-deps", "lollms", "--config", str(config_dir), cwd=tmp_path)
    assert ok.returncode == 0 and "has all its dependencies" in ok.stderr
    unknown = run_cli("install-personality-deps", "ghost", "--config", str(config_dir), cwd=tmp_path)
    assert unknown.returncode == 2 and "personality 'ghost' not found" in unknown.stderr
