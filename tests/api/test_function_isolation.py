"""A server-side tool cannot freeze the server (issue 25): a real server process on loopback (uvicorn, as
``python -m lollms_server`` runs it) whose model, the scripted binding, calls the tool the request names with the
request's ``call_arguments``, through a personality that runs the tool loop (as tool_assistant does).

A function that loops without yielding, or fills memory, runs in a worker process: /health answers while it
runs, it is stopped at server.function_timeout or server.function_memory_bytes with an error the model reads, and
the next request is served. (Before, the loop ran on the event loop: /health did not answer until it ended.)
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.core.test_binding_manager import free_port
from tests.core.test_personalities import basic, write_personality
from tests.helpers import (
    SCRIPTED_BINDING_CODE,
    SCRIPTED_CARD,
    TEST_API_KEY,
    process_alive,
    prompt,
    started,
    wait_until,
    write_binding_type,
)

TIMEOUT_SECONDS = 3.0
MEMORY_BYTES = 256 << 20
HEALTH_WAIT = 120.0  # a frozen server never answers: fail after this long rather than hang
FUNCTIONS = '''
import os
from pathlib import Path


def _announce(marker: str, text: str) -> None:
    """Write ``marker`` whole at once (renamed into place): whoever sees it exist reads all of it."""
    Path(marker + ".part").write_text(text)
    os.replace(marker + ".part", marker)


async def spin_until(marker: str, release: str) -> str:
    """Loops without ever yielding until the file ``release`` exists."""
    _announce(marker, str(os.getpid()))
    while not os.path.exists(release):
        pass
    return "released"


async def spin(marker: str) -> str:
    """Loops without ever yielding."""
    _announce(marker, str(os.getpid()))
    while True:
        pass


async def hog(megabytes: int) -> int:
    """Fills ``megabytes`` of memory, 32 MiB at a time."""
    chunks = [b"x" * (32 << 20) for _ in range(megabytes // 32)]
    return len(chunks)
'''
WORKFLOW = """
from lollms_server.core.tool_loop import run_tool_loop


async def run_workflow(prompt, params, context):
    tool = params.pop("tool")
    async for event in run_tool_loop(context, prompt, params, [tool]):
        yield event
"""


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    root: Path

    def vm_peak_rss(self) -> int:
        """The server process's peak resident memory so far (VmHWM), in bytes."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmHWM")


def start(root: Path) -> Server:
    config_dir = root / "conf"
    write_binding_type(config_dir / "personal_bindings", "scripted_binding", SCRIPTED_BINDING_CODE, SCRIPTED_CARD)
    (config_dir / "bindings").mkdir(parents=True)
    (config_dir / "bindings" / "scripted.yaml").write_text("type: scripted_binding\ndefault_model: model-a\n")
    (config_dir / "personal_functions").mkdir()
    (config_dir / "personal_functions" / "busy_tools.py").write_text(textwrap.dedent(FUNCTIONS))
    write_personality(config_dir / "personal_personalities", "tool_runner", basic("tool_runner"), WORKFLOW)
    port = free_port()
    main = {
        "server": {"host": "127.0.0.1", "function_timeout": TIMEOUT_SECONDS, "function_memory_bytes": MEMORY_BYTES},
        "security": {"allowed_api_keys": [TEST_API_KEY]},
        "paths": {
            "bindings_folder": "personal_bindings",
            "functions_folder": "personal_functions",
            "personalities_folder": "personal_personalities",
            "models_folder": "models",
        },
        "bindings_map": {"scripted": "scripted_binding"},
        "defaults": {"ttt_binding": "scripted"},
        "webui": {"enable_ui": False},
    }
    (config_dir / "main_config.yaml").write_text(yaml.safe_dump(main))
    env = {k: v for k, v in os.environ.items() if k not in ("LOLLMS_CONFIG_DIR", "LOLLMS_ENCRYPTION_KEY")}
    with (root / "server.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "lollms_server", "--config", str(config_dir), "--port", str(port)],
            cwd=root,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = Server(f"http://127.0.0.1:{port}", process, root)
    deadline = time.monotonic() + 300
    while True:  # started means answering: wait for that state, failing at once if it exits
        assert process.poll() is None, f"the server exited: {(root / 'server.log').read_text()[-2000:]}"
        try:
            if httpx.get(f"{server.url}/health", timeout=10).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "the server did not start within 300 s"
        time.sleep(0.05)


def stop(server: Server) -> None:
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
    try:
        server.process.wait(timeout=60)
    except subprocess.TimeoutExpired:  # a frozen event loop never handles SIGTERM
        server.process.kill()
        server.process.wait()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start(tmp_path_factory.mktemp("function_isolation"))
    try:
        yield running
    finally:
        stop(running)


@pytest.fixture
async def client(server: Server) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"X-API-Key": TEST_API_KEY}
    async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=HEALTH_WAIT) as http:
        yield http


def tool_request(personality: str, arguments: dict[str, Any], **parameters: Any) -> dict[str, Any]:
    return {
        "input_data": [prompt("Use your tool.")],
        "personality": personality,
        "parameters": {"call_arguments": arguments, **parameters},
    }


async def tool_result(client: httpx.AsyncClient, body: dict[str, Any]) -> str:
    """The result the server gave the model for its one call (the function_call output carries it)."""
    response = await client.post("/api/v1/generate", json=body)
    assert response.status_code == 200, response.text
    [call] = [output["data"] for output in response.json()["output"] if output["type"] == "function_call"]
    return str(call["result"])


async def test_health_answers_while_a_function_spins(client: httpx.AsyncClient, tmp_path: Path) -> None:
    marker, release = tmp_path / "spinning", tmp_path / "release"
    arguments = {"marker": str(marker), "release": str(release)}
    call = asyncio.create_task(
        tool_result(client, tool_request("tool_runner", arguments, tool="busy_tools.spin_until"))
    )
    await started(marker, call)
    worker = int(marker.read_text())
    health = await client.get("/health")  # the function spins until the release file exists: it runs now
    assert health.status_code == 200 and process_alive(worker)
    release.touch()
    assert await call == "released"


async def test_a_function_that_never_returns_is_stopped_at_its_time_bound(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    marker = tmp_path / "spinning"
    body = tool_request("tool_runner", {"marker": str(marker)}, tool="busy_tools.spin")
    result = await tool_result(client, body)
    assert result == (
        f"error: busy_tools.spin did not finish within {TIMEOUT_SECONDS:g}s (server.function_timeout): it was stopped"
    )
    await wait_until(lambda: not process_alive(int(marker.read_text())))
    assert (await client.get("/health")).status_code == 200
    answer = await tool_result(client, tool_request("tool_assistant", {"expression": "12*7+1"}))
    assert answer == "85"


async def test_a_function_that_fills_memory_is_stopped_at_its_memory_bound(
    client: httpx.AsyncClient, server: Server
) -> None:
    peak_before = server.vm_peak_rss()
    result = await tool_result(client, tool_request("tool_runner", {"megabytes": 1024}, tool="busy_tools.hog"))
    assert result == "error: busy_tools.hog failed: MemoryError: it needed more than its 256 MiB" + (
        " (server.function_memory_bytes)"
    )
    assert server.vm_peak_rss() < peak_before + 64 * (1 << 20)  # the server itself held none of it
    assert await tool_result(client, tool_request("tool_runner", {"megabytes": 64}, tool="busy_tools.hog")) == "2"


@pytest.mark.parametrize(
    ("expression", "refusal"),
    [
        ("9**9**9", "result too large"),
        ("(10**299)**1000", "result too large"),
        ("round(1, -10**299)", "round's digits must be a whole number"),
        ("(-8)**0.5", "is not a real number"),
        ("'ab'*10**9", "unsupported element"),
    ],
)
async def test_the_math_tool_refuses_unbounded_numbers(
    client: httpx.AsyncClient, expression: str, refusal: str
) -> None:
    result = await tool_result(client, tool_request("tool_assistant", {"expression": expression}))
    assert result.startswith("error: math_tools.evaluate failed: ValueError: ") and refusal in result
