"""Named keys, per-key limits, admin endpoints, metrics and reload, through the real app (one process, the
in-memory store): 429 with Retry-After and x-ratelimit-* in each API's error shape, concurrency held for a
stream's whole length, token quotas, allowed models, usage per key and model, Prometheus counts after known
traffic, admin endpoints refusing user keys, and binding instances reloaded without a restart."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import httpx
import pytest
import yaml

from lollms_server.app import create_app
from lollms_server.core import quotas
from lollms_server.core.api_keys import KeyFile, KeyLimits
from lollms_server.core.config import ServerConfig
from tests.conftest import running_client
from tests.helpers import (
    TEST_API_KEY,
    add_scripted_binding,
    make_config,
    scripted_calls,
    scripted_hold,
    wait_until,
    write_instance,
)
from tests.server import serving

ADMIN = {"X-API-Key": TEST_API_KEY}  # allowed_api_keys entries are anonymous admin keys
# Noon (and 30 s) UTC on 2026-01-15: the counts' windows (the UTC minute and day) cannot end during a test.
MID_WINDOW = 1_768_478_430.0


class StoppedClock:
    """quotas' wall clock, stopped in the middle of a minute and of a day."""

    @staticmethod
    def time() -> float:
        return MID_WINDOW


@pytest.fixture(autouse=True)
def mid_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """A burst of requests that straddled a minute (or day) boundary would be counted in two windows and let
    through; a quota refused a minute before midnight UTC would say to retry in less than a minute."""
    monkeypatch.setattr(quotas, "time", StoppedClock)


def prompt(text: str = "hi", **parameters: object) -> dict[str, object]:
    return {"input_data": [{"type": "text", "role": "user_prompt", "data": text}], "parameters": parameters}


def config_with_keys(tmp_path: Path, **keys: dict[str, object]) -> tuple[ServerConfig, dict[str, dict[str, str]]]:
    """A config with the scripted binding and named keys (``name={role, limits, models}``); their headers."""
    config = make_config(tmp_path, bindings_map={"scripted": "scripted_binding"}, defaults={"ttt_binding": "scripted"})
    add_scripted_binding(config, default_model="model-a")
    key_file = KeyFile(config.paths.config_dir / "api_keys.yaml")
    headers = {}
    for name, spec in keys.items():
        secret = key_file.create(
            name,
            str(spec.get("role", "user")),
            KeyLimits(**spec.get("limits", {})),  # type: ignore[arg-type]
            tuple(spec.get("models", ())),  # type: ignore[arg-type]
            expires=spec.get("expires"),  # type: ignore[arg-type]
        )
        headers[name] = {"X-API-Key": secret}
    key_file.save()
    return config, headers


async def test_requests_per_minute_refused_in_every_apis_shape(tmp_path: Path) -> None:
    config, keys = config_with_keys(tmp_path, alice={"limits": {"requests_per_minute": 3}})
    async with running_client(create_app(config), api_key=None) as client:
        answers = [await client.get("/api/v1/list_bindings", headers=keys["alice"]) for _ in range(3)]
        lollms = await client.get("/api/v1/list_bindings", headers=keys["alice"])
        openai = await client.get("/v1/models", headers=keys["alice"])
        ollama = await client.get("/api/tags", headers=keys["alice"])
        admin = await client.get("/api/v1/list_bindings", headers=ADMIN)  # another key: its own counts
    assert [answer.status_code for answer in answers] == [200, 200, 200]
    assert answers[0].headers["x-ratelimit-limit-requests"] == "3"
    assert answers[0].headers["x-ratelimit-remaining-requests"] == "2"
    assert [lollms.status_code, openai.status_code, ollama.status_code] == [429, 429, 429]
    assert 1 <= int(lollms.headers["retry-after"]) <= 60 and lollms.headers["x-ratelimit-remaining-requests"] == "0"
    assert "3 requests per minute" in lollms.json()["detail"] and lollms.json()["code"] == "rate_limited"
    assert openai.json()["error"]["type"] == "rate_limit_error"
    assert "rate limit reached for key 'alice'" in ollama.json()["error"]
    assert admin.status_code == 200


async def test_a_stream_holds_its_concurrency_slot_to_the_end(tmp_path: Path) -> None:
    config, keys = config_with_keys(tmp_path, bob={"limits": {"concurrent_requests": 1}})
    app = create_app(config)
    async with serving(app) as url, httpx.AsyncClient(base_url=url, timeout=120) as client:
        # The stream holds after its first chunk until the second request has had its answer.
        release = scripted_hold("stream")
        body = {**prompt(chunks=["a", "b", "c"], hold="stream"), "stream": True}
        async with client.stream("POST", "/api/v1/generate", json=body, headers=keys["bob"]) as stream:
            assert stream.status_code == 200
            second = await client.get("/api/v1/list_bindings", headers=keys["bob"])
            release.set()
            assert second.status_code == 429 and second.headers["retry-after"] == "1"
            assert "1 concurrent requests" in second.json()["detail"]
            await stream.aread()
        await wait_until(lambda: not app.state.limit_store.leases["bob"])
        assert (await client.get("/api/v1/list_bindings", headers=keys["bob"])).status_code == 200


async def test_token_quotas_allowed_models_and_usage_per_key(tmp_path: Path) -> None:
    config, keys = config_with_keys(
        tmp_path,
        carol={"limits": {"tokens_per_day": 5}, "models": ["scripted/model-a"]},
        dave={"role": "user"},
    )
    async with running_client(create_app(config), api_key=None) as client:
        first = await client.post(
            "/api/v1/generate", json=prompt(chunks=["1", "2", "3", "4", "5", "6"]), headers=keys["carol"]
        )
        over = await client.post("/api/v1/generate", json=prompt(), headers=keys["carol"])
        other_model = await client.post(
            "/api/v1/generate", json={**prompt(), "model_name": "model-b"}, headers=keys["dave"]
        )
        denied_model = await client.post(
            "/api/v1/generate", json={**prompt(), "model_name": "model-b"}, headers=keys["carol"]
        )
        user_usage = await client.get("/api/v1/admin/usage", headers=keys["dave"])
        usage = (await client.get("/api/v1/admin/usage", headers=ADMIN)).json()["keys"]
    assert first.status_code == 200
    assert over.status_code == 429 and "5 tokens per day" in over.json()["detail"]
    assert int(over.headers["retry-after"]) > 60  # the next UTC day
    assert other_model.status_code == 200
    assert denied_model.status_code == 429  # the quota is checked before anything else
    assert user_usage.status_code == 403 and "admin" in user_usage.json()["detail"]
    assert usage["carol"]["requests"] == 1 and usage["carol"]["completion_tokens"] == {"scripted/model-a": 6}
    assert usage["dave"]["completion_tokens"] == {"scripted/model-b": 2}


async def test_a_key_may_only_use_its_models(tmp_path: Path) -> None:
    config, keys = config_with_keys(tmp_path, erin={"models": ["scripted/model-a"]})
    async with running_client(create_app(config), api_key=None) as client:
        allowed = await client.post("/api/v1/generate", json=prompt(), headers=keys["erin"])
        refused = await client.post(
            "/api/v1/generate", json={**prompt(), "model_name": "model-b"}, headers=keys["erin"]
        )
        openai = await client.post(
            "/v1/chat/completions",
            json={"model": "scripted/model-b", "messages": [{"role": "user", "content": "hi"}]},
            headers=keys["erin"],
        )
    assert allowed.status_code == 200
    assert refused.status_code == 403 and "may not use the model 'scripted/model-b'" in refused.json()["detail"]
    assert openai.status_code == 403 and openai.json()["error"]["type"] == "authentication_error"


async def test_admin_endpoints_manage_keys_and_refuse_user_keys(tmp_path: Path) -> None:
    config, keys = config_with_keys(tmp_path, frank={}, old={"expires": "2020-01-01"})
    async with running_client(create_app(config), api_key=None) as client:
        for method, path in (
            ("GET", "/api/v1/admin/keys"),
            ("POST", "/api/v1/admin/reload"),
            ("DELETE", "/api/v1/admin/keys/frank"),
        ):
            refused = await client.request(method, path, headers=keys["frank"])
            assert refused.status_code == 403, path
        expired = await client.get("/api/v1/list_bindings", headers=keys["old"])
        created = await client.post(
            "/api/v1/admin/keys", json={"name": "grace", "requests_per_minute": 10}, headers=ADMIN
        )
        secret = created.json()["key"]
        works = await client.get("/api/v1/list_bindings", headers={"X-API-Key": secret})
        listed = (await client.get("/api/v1/admin/keys", headers=ADMIN)).json()["keys"]
        duplicate = await client.post("/api/v1/admin/keys", json={"name": "grace"}, headers=ADMIN)
        revoked = await client.delete("/api/v1/admin/keys/grace", headers=ADMIN)
        gone = await client.get("/api/v1/list_bindings", headers={"X-API-Key": secret})
        unknown = await client.delete("/api/v1/admin/keys/nobody", headers=ADMIN)
    assert expired.status_code == 401 and "has expired" in expired.json()["detail"]
    assert created.status_code == 201 and created.json()["limits"]["requests_per_minute"] == 10
    assert works.status_code == 200 and works.headers["x-ratelimit-limit-requests"] == "10"
    names = {entry["name"]: entry for entry in listed}
    assert set(names) == {"frank", "old", "grace"} and names["old"]["expired"] is True
    assert "hash" not in names["grace"] and secret not in str(listed)
    assert duplicate.status_code == 400 and revoked.status_code == 200
    assert gone.status_code == 401 and unknown.status_code == 404
    stored = (config.paths.config_dir / "api_keys.yaml").read_text()
    assert secret not in stored and "grace" not in stored


async def test_metrics_after_known_traffic(tmp_path: Path) -> None:
    config, keys = config_with_keys(tmp_path, heidi={"limits": {"requests_per_minute": 4}})
    async with running_client(create_app(config), api_key=None) as client:
        for _ in range(3):
            assert (await client.post("/api/v1/generate", json=prompt(), headers=keys["heidi"])).status_code == 200
        streamed = await client.post("/api/v1/generate", json={**prompt(), "stream": True}, headers=keys["heidi"])
        assert streamed.status_code == 200
        assert (await client.get("/api/v1/list_bindings", headers=keys["heidi"])).status_code == 429
        unprotected = await client.get("/metrics")
        text = (await client.get("/metrics", headers=ADMIN)).text
    assert unprotected.status_code == 403  # protected like the API unless metrics.public

    def value(pattern: str) -> float:
        match = re.search(rf"^{pattern} (\S+)$", text, re.MULTILINE)
        assert match, pattern
        return float(match[1])

    assert value(r'lollms_http_requests_total\{method="POST",route="/api/v1/generate",status="200"\}') == 4
    assert value(r'lollms_http_requests_total\{method="GET",route="/api/v1/\*",status="429"\}') == 1
    assert value(r'lollms_generations_total\{binding="scripted",model="model-a",outcome="ok",task="ttt"\}') == 4
    assert value(r'lollms_tokens_total\{binding="scripted",kind="completion",model="model-a"\}') == 8
    assert value(r'lollms_key_generations_total\{key="heidi",outcome="ok"\}') == 4
    assert value(r'lollms_key_refusals_total\{key="heidi",limit="requests_per_minute"\}') == 1
    assert value(r'lollms_time_to_first_output_seconds_count\{binding="scripted",task="ttt"\}') == 1
    assert value(r'lollms_binding_up\{instance="scripted",status="active",type="scripted_binding"\}') == 1
    assert value("lollms_queue_waiting") == 0 and value("lollms_active_streams") == 0


async def test_reload_adds_changes_and_keeps_a_broken_instance(tmp_path: Path) -> None:
    config = make_config(tmp_path, bindings_map={"scripted": "scripted_binding"}, defaults={"ttt_binding": "scripted"})
    add_scripted_binding(config, default_model="model-a")
    main = tmp_path / "main_config.yaml"
    values = {
        "security": {"allowed_api_keys": [TEST_API_KEY]},
        **{k: config.values[k] for k in ("paths", "bindings_map", "defaults")},
    }
    main.write_text(yaml.safe_dump(values))
    from lollms_server.core.config import load_main_config

    app = create_app(load_main_config(main))
    async with running_client(app, api_key=None) as client:
        values["bindings_map"]["second"] = "scripted_binding"
        main.write_text(yaml.safe_dump(values))
        write_instance(app.state.config, "second", {"type": "scripted_binding", "default_model": "model-b"})
        write_instance(
            app.state.config, "scripted", {"type": "scripted_binding", "default_model": "nope", "local": "x"}
        )
        report = (await client.post("/api/v1/admin/reload", headers=ADMIN)).json()
        second = await client.post("/api/v1/generate", json={**prompt(), "binding_name": "second"}, headers=ADMIN)
        first = await client.post("/api/v1/generate", json=prompt(), headers=ADMIN)
    assert report["binding_instances"]["second"] == "added"
    assert report["binding_instances"]["scripted"].startswith("kept the running instance")
    assert second.status_code == 200 and second.json()["output"][0]["metadata"]["model"] == "model-b"
    assert first.status_code == 200  # still the old, working instance


async def test_no_limits_store_round_trip_without_named_keys(tmp_path: Path) -> None:
    """Config keys have no limits: no x-ratelimit headers, nothing refused."""
    config = make_config(tmp_path)
    async with running_client(create_app(config), api_key=None) as client:
        answers = await asyncio.gather(*(client.get("/api/v1/list_bindings", headers=ADMIN) for _ in range(20)))
    assert {answer.status_code for answer in answers} == {200}
    assert "x-ratelimit-limit-requests" not in answers[0].headers


async def test_revoking_the_last_key_never_turns_authentication_off(tmp_path: Path) -> None:
    """allowed_api_keys: [] and one named admin key: once it is revoked, a request without a key is still refused
    (it was served, and could create a new admin key)."""
    config, keys = config_with_keys(tmp_path, solo={"role": "admin"})
    config.values["security"]["allowed_api_keys"] = []
    async with running_client(create_app(config), api_key=None) as client:
        assert (await client.get("/api/v1/admin/keys")).status_code == 403
        assert (await client.delete("/api/v1/admin/keys/solo", headers=keys["solo"])).status_code == 200
        listed = await client.get("/api/v1/admin/keys")
        created = await client.post("/api/v1/admin/keys", json={"name": "mallory", "role": "admin"})
        generated = await client.post("/api/v1/generate", json=prompt())
        revoked = await client.get("/api/v1/list_bindings", headers=keys["solo"])
    assert [listed.status_code, created.status_code, generated.status_code] == [403, 403, 403]
    assert revoked.status_code == 401
    assert "mallory" not in (config.paths.config_dir / "api_keys.yaml").read_text()


async def test_metrics_are_for_admin_keys(tmp_path: Path) -> None:
    """They name every key and every instance: a user key gets 403; an admin key, or anyone when metrics.public."""
    config, keys = config_with_keys(tmp_path, alice={}, root={"role": "admin"})
    async with running_client(create_app(config), api_key=None) as client:
        by_user = await client.get("/metrics", headers=keys["alice"])
        by_admin = await client.get("/metrics", headers=keys["root"])
    assert by_user.status_code == 403 and "admin" in by_user.json()["detail"] and "alice" not in by_user.text
    assert by_admin.status_code == 200 and "lollms_" in by_admin.text
    config.values["metrics"]["public"] = True
    async with running_client(create_app(config), api_key=None) as client:
        assert (await client.get("/metrics")).status_code == 200


async def test_an_expiry_beyond_the_year_9999_in_utc_is_a_400(tmp_path: Path) -> None:
    config, keys = config_with_keys(tmp_path, root={"role": "admin"})
    async with running_client(create_app(config), api_key=None) as client:
        refused = await client.post(
            "/api/v1/admin/keys", json={"name": "late", "expires": "9999-12-31T23:59:59-23:59"}, headers=keys["root"]
        )
        listed = await client.get("/api/v1/admin/keys", headers=keys["root"])
    assert refused.status_code == 400 and "out of range" in refused.json()["detail"]
    assert "late" not in {key["name"] for key in listed.json()["keys"]}


async def test_simultaneous_requests_cannot_overshoot_a_token_limit(tmp_path: Path) -> None:
    # Each request may use its prompt (1 token: "hi" as the binding cannot count) and max_tokens=5: six at once
    # would use 3 tokens each (18) against a limit of 10 if counted only when they end. Reserved before they run:
    # the first gets 6, the second the 4 left (its max_tokens cut to 3), the other four are refused at once.
    config, keys = config_with_keys(tmp_path, frank={"limits": {"tokens_per_minute": 10}})
    async with running_client(create_app(config), api_key=None) as client:
        release = scripted_hold("burst")
        body = prompt(chunks=["a", "b", "c"], hold="burst", max_tokens=5)
        requests = [
            asyncio.create_task(client.post("/api/v1/generate", json=body, headers=keys["frank"])) for _ in range(6)
        ]
        await wait_until(lambda: sum(request.done() for request in requests) == 4)  # the refusals, while 2 run
        release.set()
        answers = await asyncio.gather(*requests)
        usage = (await client.get("/api/v1/admin/usage", headers=ADMIN)).json()["keys"]["frank"]
        after = await client.post("/api/v1/generate", json=prompt(max_tokens=5), headers=keys["frank"])
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [200, 200, 429, 429, 429, 429]
    refused = next(answer for answer in answers if answer.status_code == 429)
    assert "tokens per minute" in refused.json()["detail"] and 1 <= int(refused.headers["retry-after"]) <= 60
    used = sum(usage["prompt_tokens"].values()) + sum(usage["completion_tokens"].values())
    assert used == 6  # what the two used (3 each); settled from their reservations
    assert after.status_code == 200  # the reservations were settled to what was used: 4 tokens were left


async def test_max_tokens_is_cut_to_what_the_key_has_left(tmp_path: Path) -> None:
    config, keys = config_with_keys(tmp_path, gina={"limits": {"tokens_per_day": 8}})
    async with running_client(create_app(config), api_key=None) as client:
        await client.post("/api/v1/generate", json=prompt(max_tokens=400), headers=keys["gina"])
    calls = scripted_calls()
    assert calls[-1]["params"]["max_tokens"] == 7  # 8 left, one of them the prompt's
