"""``parameters.output_format: "url"`` through /api/v1/generate, and the artifacts it stores served at
/api/v1/artifacts/{id} with the key, their content type, and only until they expire."""

from __future__ import annotations

import base64
import json
import logging
import stat
import time
from pathlib import Path
from typing import Any

import pytest

from lollms_server.app import create_app
from lollms_server.core.api_keys import KeyFile
from lollms_server.core.artifacts import ARTIFACT_PATH_PREFIX
from lollms_server.core.errors import ConfigError
from tests.conftest import running_client
from tests.helpers import TEST_API_KEY, make_config, prompt, write_binding_type, write_instance

# Not a valid image, and it needs not be one: the store keeps bytes, whatever they are.
PNG_BYTES = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
PNG_BASE64 = base64.b64encode(PNG_BYTES).decode("ascii")

PAINTER_CODE = f"""
from lollms_server.core.bindings import Binding

PNG = "{PNG_BASE64}"

class PainterBinding(Binding):
    binding_type_name = "painter_binding"

    async def list_available_models(self):
        return [{{"name": "brush"}}]

    def get_supported_input_modalities(self):
        return ["text"]

    def get_supported_output_modalities(self):
        return ["image", "text"]

    async def load_model(self, model_name):
        return True

    async def unload_model(self):
        return True

    async def get_model_info(self, model_name=None):
        return {{"model_name": "brush"}}

    def outputs(self, params):
        return [
            {{"type": "text", "data": "a caption"}},
            {{"type": "image", "data": PNG, "mime_type": "image/png", "metadata": {{"seed": params.get("seed")}}}},
            {{"type": "image", "data": "https://example.invalid/elsewhere.png", "mime_type": "image/png"}},
        ]

    async def generate(self, prompt, params, request_info, multimodal_data=None):
        return self.outputs(params)

    async def generate_stream(self, prompt, params, request_info, multimodal_data=None):
        yield {{"type": "info", "content": "step 1 of 1"}}
        yield {{"type": "final", "content": self.outputs(params)}}
"""

PAINTER_CARD: dict[str, Any] = {
    "type_name": "painter_binding",
    "supports_streaming": True,
    "supported_input_modalities": ["text"],
    "supported_output_modalities": ["image", "text"],
    "instance_schema": {"__version__": "1.0", "default_model": {"type": "str", "default": "brush", "help": "m"}},
}


def painter_app(tmp_path: Path, user_keys: tuple[str, ...] = (), **artifacts: Any):  # type: ignore[no-untyped-def]
    """The app with the painter binding; ``user_keys``: named user keys to create first (their headers are in
    ``app.state.test_headers``)."""
    config = make_config(
        tmp_path,
        bindings_map={"painter": "painter_binding"},
        defaults={"tti_binding": "painter"},
        artifacts={"folder": "stored", **artifacts},
    )
    write_binding_type(config.paths.bindings_folder, "painter_binding", code=PAINTER_CODE, card=PAINTER_CARD)
    write_instance(config, "painter", {})
    keys = KeyFile(config.paths.config_dir / "api_keys.yaml")
    headers = {name: {"X-API-Key": keys.create(name, "user")} for name in user_keys}
    if user_keys:
        keys.save()
    app = create_app(config)
    app.state.test_headers = headers
    return app


def tti(parameters: dict[str, Any], stream: bool = False) -> dict[str, Any]:
    return {
        "input_data": [prompt("a red square")],
        "generation_type": "tti",
        "parameters": parameters,
        "stream": stream,
    }


def final_of(text: str) -> dict[str, Any]:
    events = [json.loads(block[len("data: ") :]) for block in text.split("\n\n") if block.startswith("data: ")]
    assert [event["type"] for event in events] == ["info", "final"], events
    return events[-1]  # type: ignore[no-any-return]


async def test_base64_stays_the_default(tmp_path: Path) -> None:
    async with running_client(painter_app(tmp_path)) as client:
        response = await client.post("/api/v1/generate", json=tti({"seed": 3}))
    assert response.status_code == 200, response.text
    image = response.json()["output"][1]
    assert image["data"] == PNG_BASE64 and "artifact_id" not in image["metadata"]
    assert not (tmp_path / "stored").exists()


async def test_url_output_is_served_with_the_key_and_its_content_type(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    app = painter_app(tmp_path)
    async with running_client(app) as client:
        response = await client.post("/api/v1/generate", json=tti({"output_format": "url", "seed": 3}))
        assert response.status_code == 200, response.text
        text, image, remote = response.json()["output"]
        assert text["data"] == "a caption"  # text outputs are left as they are
        assert remote["data"] == "https://example.invalid/elsewhere.png"  # so is a binary that is already a URL
        artifact_id = image["metadata"]["artifact_id"]
        assert image["data"] == f"{ARTIFACT_PATH_PREFIX}{artifact_id}" and image["mime_type"] == "image/png"
        assert image["metadata"]["seed"] == 3 and image["metadata"]["size"] == len(PNG_BYTES)
        assert time.time() < image["metadata"]["expires_at"] <= time.time() + 3600

        served = await client.get(image["data"])
        assert served.status_code == 200
        assert served.content == PNG_BYTES
        assert served.headers["content-type"] == "image/png"
        assert served.headers["x-content-type-options"] == "nosniff"
        cache, max_age = served.headers["cache-control"].split(", max-age=")
        assert cache == "private" and 3500 < int(max_age) <= 3600

        client.headers.pop("X-API-Key")
        assert (await client.get(image["data"])).status_code == 403
        client.headers["X-API-Key"] = "wrong-key"
        assert (await client.get(image["data"])).status_code == 401
        client.headers["X-API-Key"] = TEST_API_KEY

        unknown = await client.get(f"{ARTIFACT_PATH_PREFIX}{'A' * len(artifact_id)}")
        assert unknown.status_code == 404 and unknown.json()["code"] == "not_found"
        for attempt in ("..%2F..%2Fmain_config.yaml", "%2E%2E", artifact_id + ".json"):
            assert (await client.get(f"{ARTIFACT_PATH_PREFIX}{attempt}")).status_code == 404, attempt

        # An hour later, by the store's clock: not served, and gone from the disk.
        app.state.artifact_store.clock = lambda: time.time() + 3601
        expired = await client.get(image["data"])
        assert expired.status_code == 404
    assert list((tmp_path / "stored").iterdir()) == []
    assert PNG_BASE64[:40] not in caplog.text


async def test_an_artifact_is_served_to_its_key_and_admins_only(tmp_path: Path) -> None:
    """Another user key asking for the id gets what an unknown id gets: 404 (it read the audio of others)."""
    app = painter_app(tmp_path, user_keys=("alice", "bob"))
    alice, bob = app.state.test_headers["alice"], app.state.test_headers["bob"]
    async with running_client(app) as client:
        made = await client.post("/api/v1/generate", json=tti({"output_format": "url"}), headers=alice)
        assert made.status_code == 200, made.text
        path = made.json()["output"][1]["data"]
        by_bob = await client.get(path, headers=bob)
        by_alice = await client.get(path, headers=alice)
        by_admin = await client.get(path)  # TEST_API_KEY: an allowed_api_keys entry, an admin
    assert by_bob.status_code == 404 and by_bob.json()["code"] == "not_found"
    assert by_alice.status_code == 200 and by_alice.content == PNG_BYTES
    assert by_admin.status_code == 200


async def test_stored_files_are_private(tmp_path: Path) -> None:
    async with running_client(painter_app(tmp_path)) as client:
        response = await client.post("/api/v1/generate", json=tti({"output_format": "url"}))
    assert response.status_code == 200, response.text
    files = list((tmp_path / "stored").iterdir())
    assert len(files) == 2 and all(stat.S_IMODE(path.stat().st_mode) == 0o600 for path in files)


async def test_streaming_final_holds_the_url(tmp_path: Path) -> None:
    async with running_client(painter_app(tmp_path)) as client:
        response = await client.post("/api/v1/generate", json=tti({"output_format": "url"}, stream=True))
        assert response.status_code == 200, response.text
        image = final_of(response.text)["content"][1]
        assert image["data"].startswith(ARTIFACT_PATH_PREFIX)
        served = await client.get(image["data"])
    assert served.status_code == 200 and served.content == PNG_BYTES


@pytest.mark.parametrize("value", ["png", 1, ["url"]])
async def test_an_invalid_output_format_is_a_400_naming_it(tmp_path: Path, value: Any) -> None:
    async with running_client(painter_app(tmp_path)) as client:
        response = await client.post("/api/v1/generate", json=tti({"output_format": value}))
    assert response.status_code == 400
    assert "output_format" in response.json()["detail"]


async def test_an_output_over_the_cap_is_refused(tmp_path: Path) -> None:
    async with running_client(painter_app(tmp_path, max_total_bytes=1024)) as client:
        response = await client.post("/api/v1/generate", json=tti({"output_format": "url"}))
    assert response.status_code == 413
    assert "max_total_bytes" in response.json()["detail"]


async def test_the_artifact_route_is_documented(tmp_path: Path) -> None:
    async with running_client(painter_app(tmp_path)) as client:
        schema = (await client.get("/openapi.json")).json()
    assert f"{ARTIFACT_PATH_PREFIX}{{artifact_id}}" in schema["paths"]


@pytest.mark.parametrize(
    "section",
    [{"ttl_seconds": 0}, {"max_total_bytes": 10}, {"max_count": 0}, {"rescan_seconds": 0}, {"expiry": 5}],
)
def test_bad_settings_of_the_section_are_refused(tmp_path: Path, section: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="artifacts"):
        make_config(tmp_path, artifacts=section)
