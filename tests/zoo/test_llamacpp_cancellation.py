"""Client disconnects stop llama.cpp generation long before its end and free the slot; concurrency is safe."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest

from lollms_server.app import create_app
from lollms_server.core.compute_threads import compute_threads
from tests.helpers import TEST_API_KEY, wait_until
from tests.server import serving
from tests.zoo.test_llamacpp_binding import embedded_model, llama_config

pytest.importorskip("llama_cpp")

HEADERS = {"X-API-Key": TEST_API_KEY}
LONG = {"type": "text", "role": "user_prompt", "data": "Count from 1 to 500, one number per line."}
LONG_PARAMS = {"max_tokens": 1500, "temperature": 0.0, "seed": 1}


def loaded_llm(app: Any) -> Any:
    """The one generation copy of a model the 'llama' instance has loaded."""
    binding = app.state.binding_manager.instances["llama"].binding
    (loaded,) = [model for (kind, _), model in binding._loaded.items() if kind == "generation"]
    return loaded


async def settled(app: Any, timeout: float = 60.0) -> tuple[int, bool]:
    """(active slots, model lock held) once both are free, or as they are at the timeout."""
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if app.state.resource_manager.stats().active == 0 and not loaded_llm(app).lock.locked():
            break
        await asyncio.sleep(0.02)
    return app.state.resource_manager.stats().active, loaded_llm(app).lock.locked()


async def nothing_runs(app: Any) -> int:
    """The model's token count once no compute thread runs any work (so nothing can add to it any more)."""
    await wait_until(lambda: len(compute_threads._idle) == compute_threads.thread_count())
    return int(loaded_llm(app).llm.n_tokens)


async def prompt_tokens(client: httpx.AsyncClient) -> int:
    response = await client.post(
        "/api/v1/generate", json={"input_data": [LONG], "parameters": {**LONG_PARAMS, "max_tokens": 1}}
    )
    return int(response.json()["output"][0]["metadata"]["usage"]["prompt_tokens"])


async def test_stream_disconnect_stops_generation_and_frees_the_slot(tmp_path: Path) -> None:
    app = create_app(llama_config(tmp_path))
    async with serving(app) as url, httpx.AsyncClient(base_url=url, headers=HEADERS, timeout=300) as client:
        prompt = await prompt_tokens(client)
        received = 0
        async with client.stream(
            "POST", "/api/v1/generate", json={"input_data": [LONG], "parameters": LONG_PARAMS, "stream": True}
        ) as response:
            async for line in response.aiter_lines():
                if line.startswith("data: "):
                    received += 1
                if received == 5:
                    break  # leaving the block closes the connection
        active, locked = await settled(app)
        assert (active, locked) == (0, False)
        generated = await nothing_runs(app) - prompt
        assert loaded_llm(app).llm.n_tokens - prompt == generated  # nothing runs any more
        # Stopped about when the client left, far from max_tokens=1500. How soon after is a matter of speed
        # (the server notices the disconnect between tokens): bench/ measures it, a loaded machine stretches it.
        assert 0 < generated < 1000
        # The instance serves the next request normally.
        after = await client.post("/api/v1/generate", json={"input_data": [LONG], "parameters": {"max_tokens": 3}})
        assert after.status_code == 200


# A raw prompt this model continues greedily for its whole max_tokens (it never stops by itself).
COUNTING = {"model": "llama", "prompt": "1, 2, 3, 4, 5, 6, 7, 8,", "max_tokens": 1500, "temperature": 0}


async def test_non_streaming_disconnect_stops_generation_and_frees_the_slot(tmp_path: Path) -> None:
    app = create_app(llama_config(tmp_path))
    async with serving(app) as url, httpx.AsyncClient(base_url=url, headers=HEADERS, timeout=300) as client:
        counted = await client.post("/v1/completions", json={**COUNTING, "max_tokens": 1})
        prompt = int(counted.json()["usage"]["prompt_tokens"])
        with pytest.raises(httpx.ReadTimeout):
            await client.post("/v1/completions", json=COUNTING, timeout=0.8)
        active, locked = await settled(app)
        assert (active, locked) == (0, False)
        generated = await nothing_runs(app) - prompt
        assert loaded_llm(app).llm.n_tokens - prompt == generated  # nothing runs any more
        assert generated < 1000  # stopped about when the client left, far from max_tokens=1500


# Greedy continuations this model gives to raw prompts: robust to the tiny numeric differences that
# different KV-cache states cause, yet wrong as soon as two requests' contexts were mixed up.
CONTINUATIONS = {
    "1, 2, 3, 4, 5,": "6",
    "10, 20, 30, 40,": "50",
    "a, b, c, d, e,": "f",
    "January, February, March,": "April",
}


@pytest.mark.parametrize("strategy", ["semaphore", "simple_lock", "none"])
async def test_concurrent_requests_on_two_models_are_served_correctly(tmp_path: Path, strategy: str) -> None:
    config = llama_config(tmp_path, resource_manager={"gpu_strategy": strategy, "gpu_limit": 2})
    gguf = config.paths.models_folder / "gguf"
    gguf.mkdir(parents=True)
    shutil.copy(embedded_model(), gguf / "second.gguf")  # a second file: a second model, not an alias
    requests = [(prompt, model) for prompt in CONTINUATIONS for model in ("llama", "llama/second.gguf")]
    app = create_app(config)
    # A loaded 2-core machine may take minutes over what takes seconds when idle: budgets are generous.
    async with serving(app) as url, httpx.AsyncClient(base_url=url, headers=HEADERS, timeout=600) as client:

        async def complete(prompt: str, model: str) -> str:
            body = {"model": model, "prompt": prompt, "max_tokens": 6, "temperature": 0}
            response = await client.post("/v1/completions", json=body)
            assert response.status_code == 200, response.text
            return str(response.json()["choices"][0]["text"])

        answers = await asyncio.gather(*(complete(prompt, model) for prompt, model in requests))
        assert app.state.resource_manager.stats().active == 0
    for (prompt, model), answer in zip(requests, answers, strict=True):
        assert CONTINUATIONS[prompt] in answer, (prompt, model, answer)


def test_an_interrupt_stops_llama_cpp_inside_a_decode_and_the_context_stays_usable() -> None:
    interrupt_module = pytest.importorskip("zoos.bindings.llamacpp_binding.interrupt", reason="needs the zoo")
    from llama_cpp import Llama

    llm = Llama(model_path=str(embedded_model()), n_ctx=512, n_batch=512, n_threads=1, verbose=False)
    interrupt = interrupt_module.DecodeInterrupt(llm)
    tokens = llm.tokenize(b"one two three " * 100)[:400]
    interrupt.fire()
    with pytest.raises(RuntimeError, match="llama_decode returned 2"):  # aborted inside llama.cpp
        llm.eval(tokens)
    assert llm.n_tokens == 0  # nothing of the aborted batch is kept
    interrupt.arm()
    answer = llm.create_completion("The capital of France is", max_tokens=4, temperature=0)
    assert "Paris" in answer["choices"][0]["text"]
    llm.close()


async def test_a_client_that_leaves_during_the_prompt_stops_its_evaluation(tmp_path: Path) -> None:
    # One batch of ~1,900 tokens on one thread: seconds of C code that never looks at the stop flag.
    app = create_app(llama_config(tmp_path, {"n_ctx": 2048, "n_batch": 2048, "n_threads": 1}))
    long_prompt = {"type": "text", "role": "user_prompt", "data": "Summarize: " + "the cat sat on the mat. " * 270}
    body = {"input_data": [long_prompt], "parameters": {"max_tokens": 8, "temperature": 0}, "stream": True}
    async with serving(app) as url, httpx.AsyncClient(base_url=url, headers=HEADERS, timeout=600) as client:
        await client.post("/api/v1/generate", json={"input_data": [LONG], "parameters": {"max_tokens": 1}})
        llm = loaded_llm(app).llm
        llm.reset()
        request = asyncio.create_task(client.post("/api/v1/generate", json=body))
        # The evaluation has started: the model is locked and its compute thread busy, nothing evaluated yet.
        await wait_until(
            lambda: loaded_llm(app).lock.locked() and len(compute_threads._idle) < compute_threads.thread_count()
        )
        assert llm.n_tokens == 0
        request.cancel()  # the client leaves
        with contextlib.suppress(asyncio.CancelledError):
            await request
        active, locked = await settled(app)
        assert (active, locked) == (0, False)
        assert llm.n_tokens == 0  # the batch was abandoned inside llama.cpp, not evaluated to its end
        after = await client.post("/api/v1/generate", json={"input_data": [LONG], "parameters": {"max_tokens": 3}})
        assert after.status_code == 200


STORM_REQUESTS = {  # every dialect's streaming request for the same long answer (1,500 tokens if left to run)
    "/api/v1/generate": {"input_data": [LONG], "parameters": LONG_PARAMS, "stream": True},
    "/v1/chat/completions": {
        "model": "llama", "messages": [{"role": "user", "content": LONG["data"]}], "max_tokens": 1500, "stream": True
    },
    "/api/chat": {
        "model": "llama", "messages": [{"role": "user", "content": LONG["data"]}], "options": {"num_predict": 1500}
    },
    "/v1/messages": {
        "model": "llama", "messages": [{"role": "user", "content": LONG["data"]}], "max_tokens": 1500, "stream": True
    },
}  # fmt: skip


async def test_a_storm_of_abandoned_streams_drains_at_once_in_every_dialect(tmp_path: Path) -> None:
    app = create_app(llama_config(tmp_path, {"stream_interval_ms": 0}, resource_manager={"max_queue": 100}))
    async with serving(app) as url, httpx.AsyncClient(base_url=url, headers=HEADERS, timeout=600) as client:

        async def first_chunk_then_leave(path: str) -> int:
            async with client.stream("POST", path, json=STORM_REQUESTS[path]) as response:
                async for line in response.aiter_lines():
                    if line.strip():
                        break  # leaving the block closes the connection
                return response.status_code

        statuses = await asyncio.gather(*(first_chunk_then_leave(path) for path in STORM_REQUESTS for _ in range(6)))
        assert statuses == [200] * 24
        # Run to their ends, the 24 would take 36,000 tokens (minutes); stopped, they are done within seconds.
        active, locked = await settled(app, timeout=240)
        assert (active, locked) == (0, False)
        assert app.state.resource_manager.stats().waiting == 0
        assert loaded_llm(app).llm.n_tokens < 300  # the last one ended within a few tokens of its short prompt
