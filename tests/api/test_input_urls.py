"""Inputs by URL through the real server: /generate and OpenAI image_url parts reach the binding as base64 when
the operator allows the domain, and as a 400 naming the setting otherwise; a name resolving to loopback is
refused by the server's own policy (real DNS); a config that lists a URL instead of a domain fails closed."""

from __future__ import annotations

import base64
import ipaddress
from pathlib import Path
from typing import Any

import pytest

from lollms_server.app import create_app
from lollms_server.core.errors import ConfigError
from tests.conftest import running_client
from tests.core.test_url_inputs import PNG, web
from tests.helpers import make_config, prompt, scripted_and_e5_config, scripted_calls


def generate_body(data: str, **item: Any) -> dict[str, Any]:
    return {
        "input_data": [prompt("look"), {"type": "image", "role": "input_image", "data": data, **item}],
        "model_name": "model-b",
    }


def with_allowed_domains(tmp_path: Path, *domains: str):  # type: ignore[no-untyped-def]
    config = scripted_and_e5_config(tmp_path)
    config.values["url_inputs"]["allowed_domains"] = list(domains)
    return config


async def test_urls_are_refused_unless_the_operator_allows_their_domain(tmp_path: Path) -> None:
    async with web() as port, running_client(create_app(scripted_and_e5_config(tmp_path))) as client:
        before = len(scripted_calls())
        response = await client.post("/api/v1/generate", json=generate_body(f"http://127.0.0.1:{port}/cat.png"))
        chat = await client.post(
            "/v1/chat/completions",
            json={
                "model": "scripted/model-b",
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "image_url", "image_url": {"url": f"http://127.0.0.1:{port}/cat.png"}}],
                    }
                ],
            },
        )
    assert response.status_code == 400 and "url_inputs.allowed_domains" in response.json()["detail"]
    assert chat.status_code == 400 and "url_inputs.allowed_domains" in chat.json()["error"]["message"]
    assert len(scripted_calls()) == before


async def test_a_name_that_resolves_to_loopback_is_never_fetched(tmp_path: Path) -> None:
    async with web() as port, running_client(create_app(with_allowed_domains(tmp_path, "localhost"))) as client:
        response = await client.post("/api/v1/generate", json=generate_body(f"http://localhost:{port}/cat.png"))
    assert response.status_code == 400 and "not public" in response.json()["detail"]


async def test_data_urls_reach_the_binding_as_base64(tmp_path: Path) -> None:
    async with running_client(create_app(scripted_and_e5_config(tmp_path))) as client:
        response = await client.post("/api/v1/generate", json=generate_body("data:image/svg+xml,%3Csvg%2F%3E"))
    assert response.status_code == 200, response.text
    item = scripted_calls()[-1]["multimodal"][0]
    assert base64.b64decode(item.data) == b"<svg/>" and item.mime_type == "image/svg+xml"


async def test_allowed_urls_reach_the_binding_as_base64(tmp_path: Path) -> None:
    """The server's fetcher, told that the loopback test server's address counts as public."""
    app = create_app(with_allowed_domains(tmp_path, "images.test"))
    async with web() as port, running_client(app) as client:
        inputs = app.state.generation_service.url_inputs
        inputs.address_allowed = lambda address: address == ipaddress.ip_address("127.0.0.1")
        inputs.resolver = lambda host, port: _loopback(host)
        url = f"http://images.test:{port}/cat.png"
        response = await client.post("/api/v1/generate", json=generate_body(url))
        generate_item = scripted_calls()[-1]["multimodal"][0]
        chat = await client.post(
            "/v1/chat/completions",
            json={
                "model": "scripted/model-b",
                "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}],
            },
        )
        chat_item = scripted_calls()[-1]["multimodal"][0]
    assert response.status_code == 200 and chat.status_code == 200, (response.text, chat.text)
    for item in (generate_item, chat_item):
        assert base64.b64decode(item.data) == PNG and item.mime_type == "image/png"


async def _loopback(host: str) -> list[str]:
    return ["127.0.0.1"] if host == "images.test" else []


@pytest.mark.parametrize("entry", ["*", "https://images.test", "images.test:443", "images.test/cats"])
def test_allowed_domains_that_are_not_domains_fail_closed(tmp_path: Path, entry: str) -> None:
    with pytest.raises(ConfigError, match=r"url_inputs\.allowed_domains\[0\]"):
        make_config(tmp_path, url_inputs={"allowed_domains": [entry]})
