"""Relay benchmark (run by hand, never in CI): lollms_server in front of a fast fake OpenAI backend, against the
backend alone, two bare Starlette baselines and LiteLLM's proxy, all started here, one worker each.

    venv/bin/python bench/bench_relay.py [--duration 8] [--chunks 20] [--streams 1000] [--no-litellm]

Servers (uvicorn picks uvloop and httptools where installed, for every Python server here):
  backend   bench/fake_openai_backend.py: answers at once, whole or as ``--chunks`` events.
  bare-sse  a bare Starlette endpoint streaming the same events itself: the floor of serving SSE from Python.
  bare-relay a bare Starlette endpoint passing the backend's answer through (aiohttp), bytes untouched: the floor
            of relaying.
  lollms    lollms_server, /v1/chat/completions on an openai_binding instance pointing at the backend (and on an
            ollama_binding and a gemini_binding instance pointing at its Ollama and Gemini APIs).
  litellm   LiteLLM's proxy (``litellm --config``), its model pointing at the backend. It is installed with its
            ``proxy`` extra into its own venv (``--litellm-venv``, made on first use), so its pins never touch ours.

Measurements, in one run: added p50 at concurrency 1 (non-streaming; wrk), requests/s at 32 and 100 connections,
streams/s at 32 and 100 connections (wrk reads each event stream to its end), ``--streams`` streams opened at once
(a raw asyncio client: time to each stream's first event, and to the last stream's end), and each server's
resident memory afterwards. Needs wrk (``apt-get install wrk``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_server import start_process as start  # noqa: E402
from bench_server import wrk as wrk_with_key  # noqa: E402

from tests.server import free_port  # noqa: E402

# The key of every request: lollms_server's API key and LiteLLM's master key (it refuses to start without a strong
# one); the backend and the baselines ignore it.
BENCH_KEY = "sk-" + "5e1f" * 16

MODEL = "fake-model"
MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]

BASELINES = textwrap.dedent(
    """
    import sys, aiohttp, uvicorn
    from starlette.applications import Starlette
    from starlette.responses import StreamingResponse
    from starlette.routing import Route
    sys.path.insert(0, sys.argv[3])
    from fake_openai_backend import _event

    backend, chunks = sys.argv[2], int(sys.argv[4])
    session = None

    async def sse(request):
        await request.body()
        async def events():
            yield _event({"role": "assistant", "content": ""})
            for _ in range(chunks):
                yield _event({"content": "tok "})
            yield _event({}, finish="stop")
            yield b"data: [DONE]\\n\\n"
        return StreamingResponse(events(), media_type="text/event-stream")

    async def relay(request):
        global session
        session = session or aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        body = await request.body()
        answer = await session.post(backend + "/v1/chat/completions", data=body,
                                    headers={"Content-Type": "application/json"})
        async def passed_on():
            try:
                async for data in answer.content.iter_any():
                    yield data
            finally:
                answer.release()
        return StreamingResponse(passed_on(), media_type=answer.headers.get("Content-Type"))

    app = Starlette(routes=[Route("/sse/v1/chat/completions", sse, methods=["POST"]),
                            Route("/relay/v1/chat/completions", relay, methods=["POST"])])
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
    """
)

LOLLMS = textwrap.dedent(
    """
    import sys, uvicorn
    from pathlib import Path
    from lollms_server.app import create_app
    from lollms_server.core.config import load_main_config
    uvicorn.run(create_app(load_main_config(Path(sys.argv[1]))), host="127.0.0.1", port=int(sys.argv[2]),
                log_level="warning", access_log=False)
    """
)


def write_lollms_config(folder: Path, backend: str) -> Path:
    from lollms_server.core.config_files import write_raw
    from lollms_server.core.config_schema import MAIN_SCHEMA_VERSION

    (folder / "bindings").mkdir()
    (folder / "bindings" / "relay.yaml").write_text(
        f"type: openai_binding\nbase_url: {backend}/v1\napi_key: sk-bench\ndefault_model: {MODEL}\nmax_retries: 0\n"
    )
    (folder / "bindings" / "ollama_relay.yaml").write_text(
        f"type: ollama_binding\nhost: {backend}\ndefault_model: {MODEL}\nmax_retries: 0\n"
    )
    (folder / "bindings" / "gemini_relay.yaml").write_text(
        f"type: gemini_binding\nbase_url: {backend}\napi_key: bench-key\ndefault_model: {MODEL}\nmax_retries: 0\n"
    )
    path = folder / "main_config.yaml"
    write_raw(
        path,
        MAIN_SCHEMA_VERSION,
        {
            "security": {"allowed_api_keys": [BENCH_KEY]},
            "bindings_map": {
                "relay": "openai_binding",
                "ollama_relay": "ollama_binding",
                "gemini_relay": "gemini_binding",
            },
            "defaults": {"ttt_binding": "relay"},
            "logging": {"log_level": "WARNING"},
        },
    )
    return path


def litellm_python(venv: Path) -> Path:
    """LiteLLM's proxy in a venv of its own (its pins stay out of ours), made on first use."""
    python = venv / "bin" / "python"
    if not python.exists():
        print(f"installing litellm[proxy] into {venv} (first run only)...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "litellm[proxy]"], check=True)
    return python


def wrk(url: str, body: dict, duration: int, connections: int, workdir: Path) -> tuple[float, float, float]:
    return wrk_with_key(url, body, duration, connections, workdir, key=BENCH_KEY)


def rss_mb(process: subprocess.Popen) -> float:
    for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def many_streams(host: str, port: int, path: str, body: dict, count: int) -> tuple[float, float, float]:
    """``count`` streams opened at once on their own connections: (p50 and max seconds to each stream's first
    event, seconds until the last stream ended)."""
    payload = json.dumps(body).encode()
    request = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {BENCH_KEY}\r\nContent-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
    ).encode() + payload
    started = time.perf_counter()

    async def one() -> float:
        reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
        writer.write(request)
        first = None
        seen = b""
        while True:
            data = await reader.read(65536)
            if not data:
                break
            if first is None:
                seen += data
                if b"data:" in seen:
                    first = time.perf_counter() - started
        writer.close()
        if first is None:
            raise RuntimeError(f"no event from {path}: {seen[:300]!r}")
        return first

    firsts = await asyncio.gather(*(one() for _ in range(count)))
    return statistics.median(firsts), max(firsts), time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--chunks", type=int, default=20)
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--no-litellm", action="store_true")
    parser.add_argument("--litellm-venv", type=Path, default=ROOT / "bench" / ".litellm-venv")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed: apt-get install wrk")
    os.environ.pop("LOLLMS_CONFIG_DIR", None)
    servers: dict[str, subprocess.Popen] = {}
    with tempfile.TemporaryDirectory() as temp:
        workdir = Path(temp)
        ports = {name: free_port() for name in ("backend", "baselines", "lollms", "litellm")}
        backend = f"http://127.0.0.1:{ports['backend']}"
        try:
            servers["backend"] = start(
                [sys.executable, str(ROOT / "bench" / "fake_openai_backend.py"), str(ports["backend"]),
                 "--chunks", str(args.chunks)],
                ports["backend"], "/v1/models",
            )  # fmt: skip
            servers["baselines"] = start(
                [sys.executable, "-c", BASELINES, str(ports["baselines"]), backend, str(ROOT / "bench"),
                 str(args.chunks)],
                ports["baselines"], "/nothing",
            )  # fmt: skip
            config = write_lollms_config(workdir, backend)
            servers["lollms"] = start(
                [sys.executable, "-c", LOLLMS, str(config), str(ports["lollms"])], ports["lollms"], "/health"
            )
            targets = {
                "backend alone": (f"{backend}/v1/chat/completions", MODEL),
                "bare Starlette SSE": (f"http://127.0.0.1:{ports['baselines']}/sse/v1/chat/completions", MODEL),
                "bare Starlette relay": (f"http://127.0.0.1:{ports['baselines']}/relay/v1/chat/completions", MODEL),
                "lollms_server": (f"http://127.0.0.1:{ports['lollms']}/v1/chat/completions", f"relay/{MODEL}"),
                "lollms_server (ollama)": (
                    f"http://127.0.0.1:{ports['lollms']}/v1/chat/completions",
                    f"ollama_relay/{MODEL}",
                ),
                "lollms_server (gemini)": (
                    f"http://127.0.0.1:{ports['lollms']}/v1/chat/completions",
                    f"gemini_relay/{MODEL}",
                ),
            }
            if not args.no_litellm:
                litellm_config = workdir / "litellm.yaml"
                litellm_config.write_text(
                    f"model_list:\n  - model_name: {MODEL}\n    litellm_params:\n      model: openai/{MODEL}\n"
                    f"      api_base: {backend}/v1\n      api_key: sk-bench\n"
                )
                servers["litellm"] = start(
                    [str(litellm_python(args.litellm_venv)), "-m", "litellm.proxy.proxy_cli", "--config",
                     str(litellm_config), "--port", str(ports["litellm"]), "--num_workers", "1"],
                    ports["litellm"], "/health/liveliness",
                    env={"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR",
                         "LITELLM_MASTER_KEY": BENCH_KEY},
                )  # fmt: skip
                targets["LiteLLM proxy"] = (f"http://127.0.0.1:{ports['litellm']}/v1/chat/completions", MODEL)
            run(targets, args, workdir, servers)
        finally:
            for process in servers.values():
                process.terminate()
                process.wait()


def run(targets: dict[str, tuple[str, str]], args: argparse.Namespace, workdir: Path, servers: dict) -> None:
    def body(model: str, stream: bool) -> dict:
        return {"model": model, "messages": MESSAGES, "stream": stream}

    relays = [name for name in targets if name != "bare Starlette SSE"]  # which answer non-streaming requests
    for name, (url, model) in targets.items():  # warm-up, and a check that each answers
        if name in relays:
            wrk(url, body(model, False), 2, 8, workdir)
        wrk(url, body(model, True), 2, 8, workdir)

    print(f"Relay benchmark, {args.duration}s per measurement, {args.chunks} chunks per stream")
    print("1. non-streaming, concurrency 1 (p50 added to the backend's):")
    lone = {name: wrk(targets[name][0], body(targets[name][1], False), args.duration, 1, workdir) for name in relays}
    base = lone["backend alone"][1]
    for name, (rate, p50, p99) in lone.items():
        print(f"   {name:22s} {rate:8.0f} req/s   p50 {p50:6.3f} ms (+{p50 - base:.3f})   p99 {p99:6.3f} ms")
    for connections in (32, 100):
        print(f"2. non-streaming, {connections} connections:")
        figures = {name: wrk(targets[name][0], body(targets[name][1], False), args.duration, connections, workdir)
                   for name in relays}  # fmt: skip
        report(figures, "req/s")
    for connections in (32, 100):
        print(f"3. streams of {args.chunks} chunks, {connections} connections:")
        figures = {name: wrk(url, body(model, True), args.duration, connections, workdir)
                   for name, (url, model) in targets.items()}  # fmt: skip
        report(figures, "streams/s")
    print(f"4. {args.streams} streams opened at once (first event p50 / max, last end):")
    for name, (url, model) in targets.items():
        port = int(url.split(":")[2].split("/")[0])
        path = "/" + url.split("/", 3)[3]
        p50, worst, end = asyncio.run(many_streams("127.0.0.1", port, path, body(model, True), args.streams))
        print(f"   {name:22s} first event p50 {p50:6.2f} s, max {worst:6.2f} s; all done {end:6.2f} s")
    print("5. resident memory after the run:")
    for name, process in servers.items():
        print(f"   {name:22s} {rss_mb(process):7.1f} MB")


def report(figures: dict[str, tuple[float, float, float]], unit: str) -> None:
    ours = figures.get("lollms_server")
    for name, (rate, p50, p99) in figures.items():
        ratio = f"   lollms_server is {ours[0] / rate:5.2f}x" if ours and name != "lollms_server" else ""
        print(f"   {name:22s} {rate:8.0f} {unit}   p50 {p50:7.3f} ms   p99 {p99:7.3f} ms{ratio}")


if __name__ == "__main__":
    main()
