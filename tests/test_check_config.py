"""`lollms-server check-config` reports what a start will find: an instance whose default model is not one it can
load (`/etc/passwd` for llama.cpp), or whose binding cannot even be built, is a problem naming why, in the words
the start uses when it marks the instance; a usable one is OK. The real command, in a process of its own."""

from __future__ import annotations

import asyncio
import importlib.util
from pathlib import Path

import pytest
import yaml

from lollms_server.core.binding_manager import BindingManager, InstanceState
from lollms_server.core.config import load_main_config
from lollms_server.core.resource_manager import ResourceManager
from tests.helpers import write_binding_type
from tests.test_cli import one_problem, run_cli

KEY = "k-1234567890abcdef"
# Found, not imported: what the binding itself asks (importing llama_cpp here would leave its files open).
needs_llama_cpp = pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None, reason="llama-cpp-python")


def config_folder(root: Path, bindings_map: dict[str, str], instances: dict[str, dict[str, object]]) -> Path:
    folder = root / "conf"
    (folder / "bindings").mkdir(parents=True)
    values = {
        "security": {"allowed_api_keys": [KEY]},
        "bindings_map": bindings_map,
        "paths": {"bindings_folder": "pb", "models_folder": str(root / "models")},
    }
    (folder / "main_config.yaml").write_text(yaml.safe_dump(values))
    for name, instance in instances.items():
        (folder / "bindings" / f"{name}.yaml").write_text(yaml.safe_dump(instance))
    return folder


def start_reason(folder: Path, name: str) -> tuple[InstanceState, str | None]:
    """How a start marks instance ``name``."""
    manager = BindingManager(load_main_config(folder / "main_config.yaml"), ResourceManager())

    async def start_and_stop() -> None:
        await manager.start()
        await manager.stop()

    asyncio.run(start_and_stop())
    instance = manager.instances[name]
    return instance.state, instance.reason


@needs_llama_cpp
@pytest.mark.parametrize(
    ("default_model", "why"),
    [
        ("/etc/passwd", "the instance's default_model 'passwd' is not a readable GGUF file"),
        ("/nowhere/model.gguf", "the instance's default_model 'model.gguf' is not a readable GGUF file"),
        # Its message lists what the instance offers; that listing once resolved the default again, endlessly.
        ("not-in-the-models-folder", "model 'not-in-the-models-folder' not found (available: "),
    ],
)
def test_a_default_model_the_instance_cannot_load_is_reported_as_the_start_finds_it(
    tmp_path: Path, default_model: str, why: str
) -> None:
    folder = config_folder(
        tmp_path, {"llm": "llamacpp_binding"}, {"llm": {"type": "llamacpp_binding", "default_model": default_model}}
    )
    line = one_problem(run_cli("check-config", "--config", str(folder), cwd=tmp_path))
    state, reason = start_reason(folder, "llm")
    assert state is InstanceState.UNAVAILABLE and reason is not None
    assert reason.startswith(f"default model unavailable: {why}")
    assert line == f"  - instance 'llm': unavailable at start: {reason}"


@needs_llama_cpp
def test_a_usable_llamacpp_instance_is_ok(tmp_path: Path) -> None:
    model = tmp_path / "models" / "gguf" / "tiny.gguf"
    model.parent.mkdir(parents=True)
    model.write_bytes(b"GGUF" + bytes(60))  # what the instance checks before loading: a GGUF file
    folder = config_folder(
        tmp_path,
        {"by_name": "llamacpp_binding", "by_path": "llamacpp_binding"},
        {
            "by_name": {"type": "llamacpp_binding", "default_model": "tiny"},
            "by_path": {"type": "llamacpp_binding", "default_model": str(model)},
        },
    )
    result = run_cli("check-config", "--config", str(folder), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "OK (2 binding instance(s) checked)" in result.stdout


SECRET = "sk-secret-in-the-host-field"
BROKEN_INIT = """
from lollms_server.core.bindings import Binding

class Broken(Binding):
    binding_type_name = "broken_binding"

    def __init__(self, config, resource_manager):
        super().__init__(config, resource_manager)
        raise ValueError("host must be a name, not " + repr(self.config["host"]))

    def get_supported_input_modalities(self): return ["text"]
    def get_supported_output_modalities(self): return ["text"]
    async def list_available_models(self): return []
    async def load_model(self, model_name): return True
    async def unload_model(self): return True
    async def generate(self, prompt, params, request_info, multimodal_data=None): return prompt
    async def get_model_info(self, model_name=None): return {}
"""


def test_a_binding_that_cannot_be_built_is_reported_and_its_secret_masked(tmp_path: Path) -> None:
    folder = config_folder(
        tmp_path,
        {"b": "broken_binding"},
        {"b": {"type": "broken_binding", "host": SECRET, "api_key": SECRET}},
    )
    write_binding_type(folder / "pb", "broken_binding", code=BROKEN_INIT)
    line = one_problem(run_cli("check-config", "--config", str(folder), cwd=tmp_path))
    state, reason = start_reason(folder, "b")
    assert state is InstanceState.ERROR and reason is not None
    assert line == f"  - instance 'b': {reason}"
    assert "initialisation failed: ValueError: host must be a name" in line and "sk-secret" not in line
