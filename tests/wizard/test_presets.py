"""Every preset of the wizard, written without questions (``--preset --set``): a configuration check-config
accepts and a server that starts, answers /health and has every instance active — the remote presets pointed
at loopback servers speaking OpenAI's, Ollama's and Gemini's protocols. The first-run default is the offline
preset."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import yaml

from lollms_server import cli
from lollms_server.app import create_app
from lollms_server.core.config import DEFAULT_INSTANCES, create_default_config, load_main_config
from lollms_server.wizard.main import main as wizard
from lollms_server.wizard.plan import load_presets
from tests.helpers import TEST_API_KEY, wait_until
from tests.server import serving
from tests.zoo.gemini_server import FakeGemini
from tests.zoo.ollama_server import FakeOllama
from tests.zoo.ollama_server import create_app as fake_ollama
from tests.zoo.openai_fake_server import FakeOpenAI

OPENAI_KEY = "sk-wizard-openai-secret"
GEMINI_KEY = "gm-wizard-gemini-secret"


@pytest.fixture
async def backends() -> AsyncIterator[dict[str, str]]:
    async with (
        serving(FakeOpenAI(api_key=OPENAI_KEY).app()) as openai_url,
        serving(fake_ollama(FakeOllama())) as ollama_url,
        serving(FakeGemini(api_key=GEMINI_KEY).app()) as gemini_url,
    ):
        yield {"openai": f"{openai_url}/v1", "ollama": ollama_url, "gemini": gemini_url}


def answers_for(preset: str, urls: dict[str, str]) -> list[str]:
    """The --set values pointing a preset's remote instances at the loopback backends."""
    openai = [f"api_key={OPENAI_KEY}", f"base_url={urls['openai']}"]
    by_preset = {
        "ollama_cpu": {"ollama": [f"host={urls['ollama']}"]},
        "ollama_gpu": {"ollama": [f"host={urls['ollama']}"]},
        "ollama_dalle": {"ollama": [f"host={urls['ollama']}"], "dalle": openai},
        "openai": {"openai": openai},
        "openai_diffusers": {"openai": openai},
        "gemini": {"gemini": [f"api_key={GEMINI_KEY}", f"base_url={urls['gemini']}"]},
        "vllm": {"vllm": [f"base_url={urls['openai']}", "default_model=fake-model", f"api_key={OPENAI_KEY}"]},
    }
    return [
        f"instances.{instance}.{setting}"
        for instance, settings in by_preset.get(preset, {}).items()
        for setting in settings
    ]


def test_the_presets_cover_what_operators_ask_for() -> None:
    assert set(load_presets()) >= {
        "offline",
        "llamacpp_gguf",
        "ollama_cpu",
        "ollama_gpu",
        "ollama_dalle",
        "openai",
        "openai_diffusers",
        "gemini",
        "vllm",
        "diffusers",
    }


@pytest.mark.parametrize("preset", list(load_presets()))
async def test_each_preset_makes_a_config_that_checks_and_serves(
    preset: str,
    backends: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = tmp_path / "conf"
    encryption = cli.main(["generate-key"]) == 0 and capsys.readouterr().out.strip()
    sets = answers_for(preset, backends) + [f"security.encryption_key={encryption}", "server.port=9777"]
    assert wizard(["--folder", str(folder), "--preset", preset, *[item for s in sets for item in ("--set", s)]]) == 0
    out = capsys.readouterr().out
    key = out.split("shown only this once; the file keeps only its hash):")[1].split()[0]
    assert cli.main(["--config", str(folder), "check-config"]) == 0
    assert "OK" in capsys.readouterr().out
    # No secret is on disk in plain text, and the files are private where they hold secrets.
    for path in folder.rglob("*"):
        if path.is_file():
            text = path.read_text()
            assert OPENAI_KEY not in text and GEMINI_KEY not in text and key not in text, path
    config = load_main_config(next(folder.glob("main_config.*")))
    assert "http://127.0.0.1:9777" in config.section("server")["allowed_origins"]  # the origins follow the port
    monkeypatch.delenv("LOLLMS_ENCRYPTION_KEY", raising=False)
    app = create_app(config)
    async with serving(app) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
        assert (await client.get("/health")).json()["status"] == "ok"
        manager = app.state.binding_manager
        states = lambda: {name: entry["status"] for name, entry in manager.list_instances().items()}  # noqa: E731
        await wait_until(lambda: set(states().values()) == {"active"}, timeout=60)  # checked in the background
        assert set(states()) == set(config.bindings_map)
        listed = await client.get("/api/v1/list_bindings", headers={"X-API-Key": key})
        assert set(listed.json()["binding_instances"]) == set(config.bindings_map)
        assert (await client.get("/api/v1/list_bindings", headers={"X-API-Key": TEST_API_KEY})).status_code == 401


def test_the_first_run_default_is_the_offline_preset(tmp_path: Path) -> None:
    offline = load_presets()["offline"]
    create_default_config(tmp_path / "main_config.yaml")
    written = yaml.safe_load((tmp_path / "main_config.yaml").read_text())
    assert {name: spec.type_name for name, spec in offline.instances.items()} == DEFAULT_INSTANCES
    assert {
        key: value for key, value in written["defaults"].items() if key.endswith("_binding") and value
    } == offline.defaults


def test_a_required_answer_and_a_bad_value_write_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "conf"
    assert wizard(["--folder", str(folder), "--preset", "vllm"]) == 2
    assert "instance 'vllm': default_model must be set" in capsys.readouterr().err
    assert wizard(["--folder", str(folder), "--preset", "offline", "--set", "server.port=99999"]) == 2
    assert "server.port" in capsys.readouterr().err
    assert (
        wizard(
            [
                "--folder",
                str(folder),
                "--preset",
                "offline",
                "--set",
                "server.host=0.0.0.0",
                "--set",
                "security.allowed_api_keys=[]",
            ]
        )
        == 2
    )
    assert "needs an API key" in capsys.readouterr().err
    assert not folder.exists() or not any(folder.rglob("*.yaml"))


def test_replacing_needs_yes_and_keeps_a_backup(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "conf"
    assert wizard(["--folder", str(folder), "--preset", "offline"]) == 0
    first = (folder / "main_config.yaml").read_bytes()
    assert wizard(["--folder", str(folder), "--preset", "offline"]) == 1
    assert "add --yes to replace it" in capsys.readouterr().err
    assert (folder / "main_config.yaml").read_bytes() == first
    assert wizard(["--folder", str(folder), "--preset", "llamacpp_gguf", "--yes"]) == 0
    backups = list(folder.glob("main_config.yaml.wizard*.bak"))
    assert len(backups) == 1 and backups[0].read_bytes() == first
    # --set alone edits the configuration in place (after a backup).
    assert wizard(["--folder", str(folder), "--set", "server.port=9800", "--set", "instances.llamacpp.n_ctx=2048"]) == 0
    assert yaml.safe_load((folder / "main_config.yaml").read_text())["server"]["port"] == 9800
    assert yaml.safe_load((folder / "bindings" / "llamacpp.yaml").read_text())["n_ctx"] == 2048
