"""A program the model writes that grabs too much memory, through a real server: stopped, named, the server fine.

The code-running personality (python_builder_executor) runs on a scripted binding whose answer is the program.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import httpx
import pytest

from lollms_server.app import create_app
from tests.api.test_personalities_api import personality_config
from tests.core.test_code_runner import sandbox  # noqa: F401  (sandbox: the fixture)
from tests.core.test_sandbox_limits import HOLDERS
from tests.helpers import TEST_API_KEY, prompt
from tests.server import serving

KEY = {"X-API-Key": TEST_API_KEY}


def asking_to_run(program: str) -> dict[str, Any]:
    answer = f"```python\n{textwrap.dedent(program).strip()}\n```"
    return {
        "input_data": [prompt("compute")],
        "personality": "python_builder_executor",
        "parameters": {"chunks": [answer]},
    }


@pytest.mark.usefixtures("sandbox")
async def test_a_run_over_its_total_memory_is_stopped_and_the_server_stays_up(tmp_path: Path) -> None:
    config = personality_config(
        tmp_path,
        personalities_config={"python_builder_executor": {"enabled": True}},
        code_sandbox={"max_total_memory_bytes": 768 * 1024 * 1024},
    )
    async with serving(create_app(config)) as url, httpx.AsyncClient(base_url=url, timeout=600) as client:
        hog = await client.post("/api/v1/generate", json=asking_to_run(HOLDERS.format(count=6, mib=300)), headers=KEY)
        health = await client.get("/health")
        after = await client.post("/api/v1/generate", json=asking_to_run("print(6 * 7)"), headers=KEY)
    assert hog.status_code == 200, hog.text
    report = hog.json()["output"][1]
    assert report["data"]["stopped"] == report["metadata"]["summary"]
    assert (
        "over the limit of 768 MiB for a whole run (code_sandbox.max_total_memory_bytes)"
        in report["metadata"]["summary"]
    )
    assert report["data"]["exit_code"] is None and report["data"]["timed_out"] is False
    assert health.status_code == 200
    assert after.status_code == 200 and after.json()["output"][1]["data"]["stdout"] == "42\n"
