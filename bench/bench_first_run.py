"""Time from `./run.sh` on a fresh copy of the checkout to the first text answer, then from a second `./run.sh`
(nothing to install) to the first answer.

    venv/bin/python bench/bench_first_run.py            # warm caches: pip's, the llama.cpp wheel, npm's
    venv/bin/python bench/bench_first_run.py --cold     # empty caches: every package downloaded, llama.cpp compiled
    venv/bin/python bench/bench_first_run.py --hog 2    # the same with 2 processes burning a core each

"Cold" is a fresh machine: pip, npm and the llama.cpp wheel caches start empty (in a temporary folder) and the web UI
is built. Each run prints the installer's step lines and the times to "listening" and to the first answer.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.server import free_port  # noqa: E402
from tests.user_installs import api_key, base_python, fresh_clone, started, user_environment  # noqa: E402


def burn() -> None:
    while True:
        pass


def first_answer(port: int, key: str) -> str:
    body = {
        "input_data": [{"type": "text", "role": "user_prompt", "data": "What is the capital of France?"}],
        "parameters": {"max_tokens": 16, "temperature": 0},
    }
    response = httpx.post(
        f"http://127.0.0.1:{port}/api/v1/generate", json=body, headers={"X-API-Key": key}, timeout=600
    )
    response.raise_for_status()
    return str(response.json()["output"][0]["data"])


def run_once(clone: Path, env: dict[str, str], key: str | None) -> tuple[float, float, str, list[str]]:
    """One ./run.sh: seconds to listening, to the first answer, the key, and the installer's lines."""
    port = free_port()
    began = time.monotonic()
    with started(["./run.sh", "--port", str(port)], clone, env) as console:
        listening = time.monotonic() - began
        key = key or api_key(console)
        answer = first_answer(port, key)
        answered = time.monotonic() - began
        lines = [line for line in console.lines if not line.startswith(("INFO", "20"))]
    print(f"   answer: {answer.strip()[:60]!r}")
    return listening, answered, key, lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cold", action="store_true", help="empty pip, npm and llama.cpp wheel caches")
    parser.add_argument("--hog", type=int, default=0, help="processes burning a core each during the runs")
    args = parser.parse_args()
    hogs = [multiprocessing.Process(target=burn, daemon=True) for _ in range(args.hog)]
    for hog in hogs:
        hog.start()
    try:
        with tempfile.TemporaryDirectory() as folder:
            work = Path(folder)
            caches = {}
            if args.cold:
                caches = {
                    "PIP_CACHE_DIR": str(work / "pip-cache"),
                    "LOLLMS_WHEEL_CACHE": str(work / "wheels"),
                    "npm_config_cache": str(work / "npm-cache"),
                }
            env = user_environment(PYTHON=base_python(), **caches)
            clone = fresh_clone(work / "lollms_server", with_webui=False)
            print(f"first ./run.sh ({'cold' if args.cold else 'warm'} caches, {args.hog} CPU hog(s)):")
            listening, answered, key, lines = run_once(clone, env, None)
            print("\n".join(f"   | {line}" for line in lines if not line.strip().startswith("lollms_")))  # the key
            print(f"   listening after {listening:.1f} s, first answer after {answered:.1f} s")
            print("second ./run.sh (nothing to install):")
            listening, answered, _, lines = run_once(clone, env, key)
            print("\n".join(f"   | {line}" for line in lines))
            print(f"   listening after {listening:.1f} s, first answer after {answered:.1f} s")
    finally:
        for hog in hogs:
            hog.terminate()


if __name__ == "__main__":
    main()
