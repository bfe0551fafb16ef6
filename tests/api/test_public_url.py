"""No answer is built from the request's Host header: artifact URLs come from ``server.public_url`` (or are paths
without it), and the trailing-slash redirect is relative. A real server on loopback, asked with a forged Host (and
X-Forwarded-Host) on every route, its slash variants and unknown paths, in both web-UI modes."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from lollms_server.api import webui
from lollms_server.app import create_app
from lollms_server.core.artifacts import ARTIFACT_PATH_PREFIX
from lollms_server.core.errors import ConfigError
from tests.api.test_artifacts import PAINTER_CARD, PAINTER_CODE, PNG_BYTES
from tests.api.test_webui_serving import fake_build
from tests.helpers import TEST_API_KEY, make_config, write_binding_type, write_instance
from tests.server import serving

EVIL = "evil.example"
FORGED = {"Host": EVIL, "X-Forwarded-Host": EVIL, "X-Forwarded-Proto": "https", "X-API-Key": TEST_API_KEY}
IMAGE_URL = {"prompt": "a red square", "response_format": "url"}
PATH_PARAMETER = re.compile(r"\{[^}]+\}")


def painter_app(root: Path, **sections: dict[str, Any]) -> FastAPI:
    """The app with the painter binding (a stored PNG and an image it gives as a URL) as the tti default."""
    config = make_config(
        root, bindings_map={"painter": "painter_binding"}, defaults={"tti_binding": "painter"}, **sections
    )
    write_binding_type(config.paths.bindings_folder, "painter_binding", code=PAINTER_CODE, card=PAINTER_CARD)
    write_instance(config, "painter", {})
    return create_app(config)


def leaks(response: httpx.Response) -> bool:
    return EVIL in response.text or any(EVIL in value for value in response.headers.values())


def paths_to_ask(schema: dict[str, Any]) -> list[str]:
    """Every documented path (parameters filled in), the docs, unknown paths; each also with a trailing slash,
    with two, and without it."""
    documented = [PATH_PARAMETER.sub("painter", path) for path in schema["paths"]]
    known = [*documented, "/", "/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect", "/status", "/v1/nothing"]
    asked = set()
    for path in known:
        bare = path.rstrip("/") or "/"
        asked.update({bare, f"{bare}/", f"{bare}//", f"{bare}/?x=1"})
    return sorted(asked)


@pytest.mark.parametrize("with_ui", [False, True])
async def test_no_answer_carries_the_requests_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, with_ui: bool
) -> None:
    monkeypatch.setattr(webui, "CHECKOUT_DIST", fake_build(tmp_path / "ui"))
    monkeypatch.setattr(webui, "PACKAGED_DIST", tmp_path / "not-installed-from-a-wheel")
    async with serving(painter_app(tmp_path / "config", webui={"enable_ui": with_ui})) as url:
        async with httpx.AsyncClient(base_url=url, headers=FORGED, timeout=60) as client:
            schema = (await client.get("/openapi.json")).json()
            asked = 0
            for path in paths_to_ask(schema):
                for method in ("GET", "HEAD", "POST", "OPTIONS"):
                    headers = {"Origin": f"http://{EVIL}", "Access-Control-Request-Method": "POST"}
                    response = await client.request(method, path, headers=headers if method == "OPTIONS" else None)
                    assert not leaks(response), (method, path, response.status_code, response.headers)
                    asked += 1
            image = await client.post("/v1/images/generations", json=IMAGE_URL)
            assert not leaks(image) and image.status_code == 200
            moved = await client.post("/api/v1/generate/?stream=0", json={})
    assert asked > 400
    # The redirect is still there, relative, with its query.
    assert moved.status_code == 307 and moved.headers["location"] == "/api/v1/generate?stream=0"


async def test_image_urls_are_paths_without_public_url(tmp_path: Path) -> None:
    async with serving(painter_app(tmp_path)) as url:
        async with httpx.AsyncClient(base_url=url, headers=FORGED, timeout=60) as client:
            answer = (await client.post("/v1/images/generations", json=IMAGE_URL)).json()
            stored, given = (image["url"] for image in answer["data"])
            assert stored.startswith(ARTIFACT_PATH_PREFIX)
            assert given == "https://example.invalid/elsewhere.png"  # the binding's own URL, as it gave it
            assert (await client.get(stored)).content == PNG_BYTES


async def test_image_urls_are_under_public_url(tmp_path: Path) -> None:
    app = painter_app(tmp_path, server={"public_url": "https://lollms.example.org/gpu/"})
    async with serving(app) as url:
        async with httpx.AsyncClient(base_url=url, headers=FORGED, timeout=60) as client:
            answer = (await client.post("/v1/images/generations", json=IMAGE_URL)).json()
            stored = answer["data"][0]["url"]
            assert stored.startswith(f"https://lollms.example.org/gpu{ARTIFACT_PATH_PREFIX}")
            # What a proxy at that address forwards: the path after its prefix.
            assert (await client.get(stored.removeprefix("https://lollms.example.org/gpu"))).content == PNG_BYTES


@pytest.mark.parametrize(
    "value",
    [
        "lollms.example.org",
        "ftp://lollms.example.org",
        "https://",
        "https://user:hunter2-secret@lollms.example.org",
        "https://lollms.example.org/?key=1",
        "https://lollms.example.org/#top",
        "https://lollms.example.org:99999",
        "https://lollms.example.org:port",
        "https://lollms example.org",
        "https://lollms.example.org/\r\nX: 1",
        "https://lollms.example.org/é",
        "https://" + "a" * 3000,
        "",
        5,
    ],
)
def test_a_public_url_that_cannot_be_used_stops_the_start(tmp_path: Path, value: Any) -> None:
    with pytest.raises(ConfigError, match="server.public_url") as refused:
        make_config(tmp_path, server={"public_url": value})
    assert "hunter2" not in str(refused.value)


@pytest.mark.parametrize("value", ["https://lollms.example.org", "http://127.0.0.1:9601/lollms/", "http://[::1]:80"])
def test_public_urls_that_are_accepted(tmp_path: Path, value: str) -> None:
    assert make_config(tmp_path, server={"public_url": value}).public_url == value
