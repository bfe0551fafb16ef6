"""Key changes that race, against a real server on loopback: simultaneous creations all answer 201 with a key
that works, a revocation sent alongside creations is never lost, the `keys` command run meanwhile in other
processes loses nothing, and a key file held by another process answers 503 (never a lost write)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml

from lollms_server.app import create_app
from lollms_server.core import api_keys
from lollms_server.core.api_keys import KeyFile
from lollms_server.core.config import load_main_config
from lollms_server.core.file_locks import exclusive_lock
from tests.helpers import TEST_API_KEY
from tests.server import serving

ADMIN = {"X-API-Key": TEST_API_KEY}
ROUNDS = 8


def main_config(root: Path) -> Path:
    """A main config file (the `keys` command reads it too) with one anonymous admin key and no instances."""
    root.mkdir(parents=True, exist_ok=True)
    path = root / "main_config.yaml"
    values = {
        "security": {"allowed_api_keys": [TEST_API_KEY]},
        "paths": {"instance_bindings_folder": "bindings", "models_folder": "models"},
    }
    path.write_text(yaml.safe_dump(values))
    return path


async def create(client: httpx.AsyncClient, name: str) -> httpx.Response:
    return await client.post("/api/v1/admin/keys", json={"name": name}, headers=ADMIN)


async def works(client: httpx.AsyncClient, secret: str) -> int:
    return (await client.get("/api/v1/list_bindings", headers={"X-API-Key": secret})).status_code


def stored_names(config_dir: Path) -> set[str]:
    return set(KeyFile.load(config_dir / "api_keys.yaml").records)


async def test_25_simultaneous_creations_all_answer_201_with_a_working_key(tmp_path: Path) -> None:
    config = load_main_config(main_config(tmp_path))
    async with serving(create_app(config)) as url, httpx.AsyncClient(base_url=url, timeout=120) as client:
        answers = await asyncio.gather(*(create(client, f"k{index}") for index in range(25)))
        assert [answer.status_code for answer in answers] == [201] * 25, [a.text for a in answers if a.is_error]
        statuses = await asyncio.gather(*(works(client, answer.json()["key"]) for answer in answers))
        listed = (await client.get("/api/v1/admin/keys", headers=ADMIN)).json()["keys"]
    assert statuses == [200] * 25
    assert {entry["name"] for entry in listed} == {f"k{index}" for index in range(25)}
    assert stored_names(tmp_path) == {f"k{index}" for index in range(25)}


async def test_a_revocation_alongside_creations_is_never_lost(tmp_path: Path) -> None:
    config = load_main_config(main_config(tmp_path))
    async with serving(create_app(config)) as url, httpx.AsyncClient(base_url=url, timeout=120) as client:
        for round_ in range(ROUNDS):
            victim = await create(client, f"victim{round_}")
            assert victim.status_code == 201
            revoked, *created = await asyncio.gather(
                client.delete(f"/api/v1/admin/keys/victim{round_}", headers=ADMIN),
                *(create(client, f"r{round_}-{index}") for index in range(10)),
            )
            assert revoked.status_code == 200 and [answer.status_code for answer in created] == [201] * 10
            assert await works(client, victim.json()["key"]) == 401, f"round {round_}: the revoked key still works"
            assert [await works(client, answer.json()["key"]) for answer in created] == [200] * 10
            assert f"victim{round_}" not in stored_names(tmp_path)
        # What a replica (or a restart) reads back from the file: the revocations hold there too.
        assert (await client.post("/api/v1/admin/reload", headers=ADMIN)).status_code == 200
        assert await works(client, victim.json()["key"]) == 401
    assert stored_names(tmp_path) == {f"r{round_}-{index}" for round_ in range(ROUNDS) for index in range(10)}


def keys_command(config_dir: Path, *args: str) -> subprocess.Popen[str]:
    env = {key: value for key, value in os.environ.items() if key != "LOLLMS_CONFIG_DIR"}
    return subprocess.Popen(
        [sys.executable, "-m", "lollms_server", "--config", str(config_dir), "keys", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


async def test_the_keys_command_in_other_processes_and_the_api_lose_nothing(tmp_path: Path) -> None:
    config = load_main_config(main_config(tmp_path))
    async with serving(create_app(config)) as url, httpx.AsyncClient(base_url=url, timeout=120) as client:
        commands = [keys_command(tmp_path, "create", f"cli{index}") for index in range(4)]
        answers = await asyncio.gather(*(create(client, f"api{index}") for index in range(10)))
        outputs = [await asyncio.to_thread(command.communicate, timeout=300) for command in commands]
        assert [command.returncode for command in commands] == [0] * 4, [err for _, err in outputs]
        assert [answer.status_code for answer in answers] == [201] * 10
        names = {f"cli{index}" for index in range(4)} | {f"api{index}" for index in range(10)}
        assert stored_names(tmp_path) == names
        # The server follows the file: the keys the command created are taken (the watcher looks every 2 s).
        cli_secrets = [out.strip() for out, _ in outputs]
        statuses: list[int] = []

        async def all_taken() -> bool:
            statuses[:] = [await works(client, secret) for secret in cli_secrets]
            return statuses == [200] * 4

        deadline = asyncio.get_running_loop().time() + 120
        while not await all_taken():
            assert asyncio.get_running_loop().time() < deadline, statuses
            await asyncio.sleep(0.1)
        assert [await works(client, answer.json()["key"]) for answer in answers] == [200] * 10


async def test_a_key_file_held_by_another_process_is_a_503_and_nothing_is_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(api_keys, "KEY_FILE_LOCK_SECONDS", 0.2)
    config = load_main_config(main_config(tmp_path))
    app = create_app(config)
    async with serving(app) as url, httpx.AsyncClient(base_url=url, timeout=120) as client:
        with exclusive_lock(app.state.keys.lock_path, 1.0, "the key file"):  # what `keys create` holds meanwhile
            refused = await create(client, "patient")
        accepted = await create(client, "patient")
        assert await works(client, accepted.json()["key"]) == 200
    assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
    assert "is being changed by another process" in refused.json()["detail"]
    assert accepted.status_code == 201 and stored_names(tmp_path) == {"patient"}


async def test_the_watcher_never_takes_an_older_file_over_a_change(tmp_path: Path) -> None:
    """A reload that read the file before a change cannot put the old keys back after it."""
    config = load_main_config(main_config(tmp_path))
    app = create_app(config)
    async with serving(app) as url, httpx.AsyncClient(base_url=url, timeout=120) as client:
        secrets = [(await create(client, f"w{index}")).json()["key"] for index in range(3)]
        reloads = [asyncio.to_thread(app.state.reload_keys) for _ in range(20)]
        changes = [client.delete(f"/api/v1/admin/keys/w{index}", headers=ADMIN) for index in range(3)]
        await asyncio.gather(*reloads, *changes)
        assert app.state.keys.records == {}
        assert [await works(client, secret) for secret in secrets] == [401] * 3
