"""The web UI's serving, with a stand-in build (index.html, a hashed asset, a favicon): the app at / for browsers
with a CSP and no-cache, hashed assets cached for a year, the single-page fallback for browser pages only — never
shadowing the APIs, the docs or the health check — and no traversal out of the build."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import FastAPI

from lollms_server.api import webui
from lollms_server.app import create_app
from tests.conftest import running_client
from tests.helpers import make_config

HTML = {"Accept": "text/html,application/xhtml+xml"}


def fake_build(root: Path) -> Path:
    dist = root / "dist"
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_text('<!doctype html><script type="module" src="/assets/app-1a2b3c.js"></script>')
    (dist / "assets" / "app-1a2b3c.js").write_text("console.log('app')")
    (dist / "favicon.ico").write_bytes(b"\0\0\1\0")
    (root / "secret.txt").write_text("outside the build")
    return dist


def ui_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dist: Path | None = None) -> FastAPI:
    # The checkout's webui/dist may or may not be built: create_app serves the stand-in instead.
    monkeypatch.setattr(webui, "CHECKOUT_DIST", dist or fake_build(tmp_path))
    monkeypatch.setattr(webui, "PACKAGED_DIST", tmp_path / "not-installed-from-a-wheel")
    return create_app(make_config(tmp_path / "config", webui={"enable_ui": True}))


async def test_the_app_its_assets_and_the_single_page_fallback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with running_client(ui_app(tmp_path, monkeypatch)) as client:
        home = await client.get("/", headers=HTML)
        api_root = await client.get("/")
        asset = await client.get("/assets/app-1a2b3c.js")
        deep_page = await client.get("/status", headers=HTML)
        favicon = await client.get("/favicon.ico", headers=HTML)
        unknown_api = await client.get("/v1/nothing", headers=HTML)
        ollama_unknown = await client.post("/api/pull", json={})
        health = await client.get("/health", headers=HTML)
        docs = await client.get("/docs", headers=HTML)
        not_a_browser = await client.get("/status")
        escape = await client.get("/assets/../../secret.txt")
        escape_encoded = await client.get("/assets/%2e%2e/%2e%2e/secret.txt")
        post_page = await client.post("/status", headers=HTML)
    assert home.status_code == 200 and "app-1a2b3c.js" in home.text
    assert "script-src 'self'" in home.headers["content-security-policy"] and "unsafe-inline" not in home.text
    assert home.headers["cache-control"] == "no-cache"
    assert api_root.json()["name"] == "lollms_server"  # API clients still get the JSON of where things are
    assert asset.status_code == 200 and "immutable" in asset.headers["cache-control"]
    assert deep_page.status_code == 200 and deep_page.text == home.text
    assert favicon.status_code == 200 and favicon.content == b"\0\0\1\0"
    assert unknown_api.status_code == 404 and unknown_api.json()["error"]["code"] == "not_found"
    assert ollama_unknown.status_code == 404 and "Ollama-compatible" in ollama_unknown.json()["error"]
    assert health.json()["status"] == "ok" and docs.status_code == 200 and "swagger" in docs.text.lower()
    assert not_a_browser.status_code == 404
    assert escape.status_code == 404 and escape_encoded.status_code == 404
    assert post_page.status_code == 404


async def test_a_nul_byte_in_a_path_is_a_404(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A NUL byte made the file lookup raise (500): no file has one in its name, and no page of the app either."""
    async with running_client(ui_app(tmp_path, monkeypatch)) as client:
        answers = [
            await client.get(path, headers=headers)
            for path in ("/assets/%00", "/assets/x%00.js", "/%00", "/status%00")
            for headers in (HTML, {})
        ]
    assert [answer.status_code for answer in answers] == [404] * 8


async def test_an_enabled_ui_that_is_not_built_says_how_to_build_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_client(ui_app(tmp_path, monkeypatch, tmp_path / "missing")) as client:
        page = await client.get("/", headers=HTML)
        api_root = await client.get("/")
    assert (
        page.status_code == 200
        and "npm run build" in page.text
        and "default-src 'none'" in page.headers["content-security-policy"]
    )
    assert api_root.json()["name"] == "lollms_server"


async def test_a_wheel_install_serves_the_ui_it_ships(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(webui, "PACKAGED_DIST", fake_build(tmp_path / "site-packages"))
    monkeypatch.setattr(webui, "CHECKOUT_DIST", tmp_path / "no-checkout")
    async with running_client(create_app(make_config(tmp_path / "config", webui={"enable_ui": True}))) as client:
        home = await client.get("/", headers=HTML)
    assert home.status_code == 200 and "app-1a2b3c.js" in home.text
