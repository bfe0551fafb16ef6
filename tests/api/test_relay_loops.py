"""Relay loops (core.relay) with real servers on loopback: remote binding instances whose backend is their own
server, directly or through another lollms server, answer at once with 508 naming the instance, whichever client
the binding uses (the lean aiohttp one for chat and model lists, the openai SDK for images, the ollama SDK for its
model list). Before, /v1/models hung and a generation held a connection per hop until its timeout (603 s). Routers
whose backends lead back to them, and instances pointed at the server's own address, are refused at start; the
relay header of every request is checked."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from lollms_server.app import create_app
from lollms_server.core.config import ServerConfig
from lollms_server.core.relay import RELAY_HEADER
from tests.conftest import running_client
from tests.helpers import (
    TEST_API_KEY,
    add_scripted_binding,
    make_config,
    prompt,
    until_active,
    write_instance,
)
from tests.server import free_port, serving

pytest.importorskip("openai", reason="install with ./run_tests.sh (the openai extra)")
pytest.importorskip("ollama", reason="install with ./run_tests.sh (the ollama extra)")

KEY = {"X-API-Key": TEST_API_KEY}
LOOP = "508 Loop Detected"
# Long enough for any answer on a loaded machine; a loop (before) never answers and fails here.
ANSWER_SECONDS = 120.0


def openai_instance(config: ServerConfig, name: str, url: str, model: str, **extra: Any) -> None:
    values = {"type": "openai_binding", "base_url": f"{url}/v1", "api_key": TEST_API_KEY, "default_model": model}
    write_instance(config, name, {**values, "max_retries": 0, "timeout": 60, **extra})


def ollama_instance(config: ServerConfig, name: str, url: str, model: str) -> None:
    values = {"type": "ollama_binding", "host": url, "api_key": TEST_API_KEY, "default_model": model}
    write_instance(config, name, {**values, "max_retries": 0, "timeout": 60})


def relay_config(root: Path, instances: dict[str, str], **sections: Any) -> ServerConfig:
    return make_config(root, bindings_map=instances, **sections)


async def reasons(client: httpx.AsyncClient) -> dict[str, str]:
    listed = (await client.get("/api/v1/list_bindings")).json()["binding_instances"]
    return {name: f"{entry['status']}: {entry['error']}" for name, entry in listed.items()}


async def failed_with_loop(client: httpx.AsyncClient, names: tuple[str, ...], timeout: float = 120.0) -> None:
    """Wait until each instance's health check has met the loop (its backend answered 508), as the API lists it
    (a failed instance is checked again every second)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not all(LOOP in reason for name, reason in (await reasons(client)).items() if name in names):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"no loop found within {timeout:g}s: {await reasons(client)}")
        await asyncio.sleep(0.05)


async def test_an_instance_relaying_to_its_own_server_is_refused(tmp_path: Path) -> None:
    """The server's port is not the configured one (so its settings cannot tell): the relay header catches it."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    config = relay_config(
        tmp_path, {"self": "openai_binding", "oself": "ollama_binding"}, defaults={"ttt_binding": "self"}
    )
    openai_instance(config, "self", url, "self")
    ollama_instance(config, "oself", url, "oself")
    async with serving(create_app(config), port=port):
        async with httpx.AsyncClient(base_url=url, headers=KEY, timeout=ANSWER_SECONDS) as client:
            await failed_with_loop(client, ("self", "oself"))
            models = await client.get("/v1/models")
            tags = await client.get("/api/tags")
            generated = await client.post("/api/v1/generate", json={"input_data": [prompt("hi")]})
            chat = await client.post(
                "/v1/chat/completions", json={"model": "oself", "messages": [{"role": "user", "content": "hi"}]}
            )
    assert models.status_code == 200 and tags.status_code == 200
    assert generated.status_code == 503
    assert "'self'" in generated.json()["detail"] and LOOP in generated.json()["detail"]
    assert chat.status_code == 503
    assert "'oself'" in chat.json()["error"]["message"] and LOOP in chat.json()["error"]["message"]


@asynccontextmanager
async def two_servers(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """Servers A and B, each with chat, image and Ollama instances relaying to the other, whose default models are
    the other's instances: a request for A's instance goes to B, which sends it back to A."""
    port_a, port_b = free_port(), free_port()
    url_a, url_b = f"http://127.0.0.1:{port_a}", f"http://127.0.0.1:{port_b}"
    kinds = {"chat": "openai_binding", "img": "openai_binding", "oll": "ollama_binding"}
    configs = {}
    for here, there, url in (("a", "b", url_b), ("b", "a", url_a)):
        config = relay_config(tmp_path / here, {f"{kind}_{there}": kind_type for kind, kind_type in kinds.items()})
        openai_instance(config, f"chat_{there}", url, f"chat_{here}")
        openai_instance(config, f"img_{there}", url, f"img_{here}", image_models=[f"img_{here}"])
        ollama_instance(config, f"oll_{there}", url, f"oll_{here}")
        configs[here] = config
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(serving(create_app(configs["a"]), port=port_a))
        await stack.enter_async_context(serving(create_app(configs["b"]), port=port_b))
        a = await stack.enter_async_context(httpx.AsyncClient(base_url=url_a, headers=KEY, timeout=ANSWER_SECONDS))
        b = await stack.enter_async_context(httpx.AsyncClient(base_url=url_b, headers=KEY, timeout=ANSWER_SECONDS))
        for client, there in ((a, "b"), (b, "a")):
            for kind in kinds:
                await until_active(client, f"{kind}_{there}")
        yield a, b


async def test_a_cycle_through_two_servers_answers_508_naming_the_instance(tmp_path: Path) -> None:
    async with two_servers(tmp_path) as (a, _):
        chat = await a.post(
            "/v1/chat/completions", json={"model": "chat_b", "messages": [{"role": "user", "content": "hi"}]}
        )
        image = await a.post("/v1/images/generations", json={"model": "img_b", "prompt": "a fox"})
        ollama = await a.post("/api/chat", json={"model": "oll_b", "messages": [{"role": "user", "content": "hi"}]})
        generated = await a.post("/api/v1/generate", json={"binding_name": "chat_b", "input_data": [prompt("hi")]})
        models = await a.get("/v1/models")
        tags = await a.get("/api/tags")
    for answer, message, instance in (
        (chat, chat.json()["error"]["message"], "chat_b"),
        (image, image.json()["error"]["message"], "img_b"),
        (ollama, ollama.json()["error"], "oll_b"),
        (generated, generated.json()["detail"], "chat_b"),
    ):
        assert answer.status_code == 508, (instance, answer.text)
        assert f"binding '{instance}'" in message and LOOP in message, message
    # The lists answer: each server's list of the other's models leaves out what came back.
    assert models.status_code == 200 and "chat_b" in {model["id"] for model in models.json()["data"]}
    assert tags.status_code == 200


async def test_routers_whose_backends_lead_back_to_them_are_refused(tmp_path: Path) -> None:
    routers = {"ra": ["rb", "s"], "rb": ["ra", "s"], "rc": ["ra", "s"], "rself": ["rself"]}
    config = make_config(tmp_path, bindings_map={**dict.fromkeys(routers, "router_binding"), "s": "scripted_binding"})
    add_scripted_binding(config, "s")
    for name, backends in routers.items():
        write_instance(config, name, {"type": "router_binding", "backends": backends, "default_model": "model-a"})
    async with running_client(create_app(config)) as client:
        found = await reasons(client)
        looped = await client.post("/api/v1/generate", json={"binding_name": "ra", "input_data": [prompt("hi")]})
        await until_active(client, "rc")
        served = await client.post("/api/v1/generate", json={"binding_name": "rc", "input_data": [prompt("hi")]})
    assert (
        found["ra"]
        == "error: its requests would come back to it (ra -> rb -> ra): take it out of the instances it uses"
    )
    assert "(rb -> ra -> rb)" in found["rb"] and "(rself -> rself)" in found["rself"]
    assert looped.status_code == 503 and "ra -> rb -> ra" in looped.json()["detail"]
    assert served.status_code == 200 and served.json()["output"][0]["data"] == "Hello world"


@pytest.mark.parametrize(
    ("settings", "address"),
    [
        ({"host": "127.0.0.1"}, "http://localhost:{port}/v1"),
        ({"host": "0.0.0.0"}, "http://127.0.0.1:{port}/v1"),
        ({"host": "127.0.0.1", "public_url": "https://lollms.example.org/gpu"}, "https://lollms.example.org/gpu/v1"),
    ],
)
async def test_an_instance_pointed_at_the_servers_own_address_is_refused_at_start(
    tmp_path: Path, settings: dict[str, Any], address: str
) -> None:
    port = free_port()
    config = make_config(
        tmp_path,
        server={"port": port, **settings},
        bindings_map={"self": "openai_binding", "oself": "ollama_binding"},
        defaults={"ttt_binding": "self"},
    )
    write_instance(config, "self", {"type": "openai_binding", "base_url": address.format(port=port)})
    write_instance(config, "oself", {"type": "ollama_binding", "host": address.format(port=port).removesuffix("/v1")})
    async with running_client(create_app(config)) as client:
        found = await reasons(client)
        generated = await client.post("/api/v1/generate", json={"input_data": [prompt("hi")]})
    for name in ("self", "oself"):
        assert found[name].startswith("error: its backend address is this server's own"), found[name]
    assert generated.status_code == 503 and "this server's own" in generated.json()["detail"]


async def test_the_relay_header_of_every_request_is_checked(tmp_path: Path) -> None:
    app = create_app(make_config(tmp_path))
    others = [f"{index:016x}" for index in range(1, 10)]
    async with running_client(app) as client:
        own = app.state.relay_guard.server_id
        malformed = await client.get("/api/v1/list_bindings", headers={RELAY_HEADER: "../etc, <script>"})
        too_long = await client.get("/api/v1/list_bindings", headers={RELAY_HEADER: ",".join(others)})
        came_back = await client.post(
            "/v1/chat/completions", headers={RELAY_HEADER: f"{others[0]}, {own}"}, json={"model": "x", "messages": []}
        )
        accepted = await client.get("/api/v1/list_bindings", headers={RELAY_HEADER: ",".join(others[:8])})
    assert malformed.status_code == 400 and RELAY_HEADER in malformed.json()["detail"]
    assert too_long.status_code == 508 and "server.max_relay_hops = 8" in too_long.json()["detail"]
    assert came_back.status_code == 508 and "come back" in came_back.json()["error"]["message"]
    assert accepted.status_code == 200
