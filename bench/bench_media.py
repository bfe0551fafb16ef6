"""What hostile media cost the server before it refuses them (issue 25): time, peak RSS, event-loop stall.

    venv/bin/python bench/bench_media.py

Runs a real server (uvicorn, one worker) in a subprocess with whisper_binding, denoise_binding and an
openai_binding whose backend is the tests' fake OpenAI server (in this process), and sends one request per case:
tiny audio files that decode to hours (FLAC with an honest header, with a header that lies about its length
and with none; MP3), and 9000x9000 images of a few hundred KB. For each: the status, the wall time, the peak RSS
the server grew by while answering (VmHWM reset through /proc/PID/clear_refs before each case) and the longest
a /health call waited meanwhile (a second client asks every 20 ms: how long the event loop was held). Linux only.
"""

from __future__ import annotations

import base64
import io
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import soundfile
import uvicorn
import yaml
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.server import free_port  # noqa: E402
from tests.zoo.openai_fake_server import FakeOpenAI  # noqa: E402

KEY = "bench-key-0123456789"


def status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def silence(seconds: float, rate: int = 16000, container: str = "FLAC", subtype: str = "PCM_16") -> bytes:
    """``seconds`` of silence encoded a minute at a time (a few hundred KB for hours of FLAC)."""
    buffer = io.BytesIO()
    with soundfile.SoundFile(buffer, "w", rate, 1, format=container, subtype=subtype) as file:
        minute = np.zeros(rate * 60, dtype="float32")
        left = int(seconds * rate)
        while left > 0:
            file.write(minute[: min(left, len(minute))])
            left -= len(minute)
    return buffer.getvalue()


def flac_claiming(raw: bytes, total_samples: int) -> bytes:
    """The FLAC with its STREAMINFO total-samples field (36 bits at byte 18) set to ``total_samples`` (0: unknown)."""
    packed = int.from_bytes(raw[18:26], "big")
    packed = (packed & ~((1 << 36) - 1)) | total_samples
    return raw[:18] + packed.to_bytes(8, "big") + raw[26:]


def png(width: int, height: int, mode: str = "RGBA") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, (width, height), (0, 0, 0, 0) if mode == "RGBA" else 0).save(buffer, format="PNG")
    return buffer.getvalue()


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


class HealthWatch:
    """A second client asking /health every 20 ms; ``longest`` is the slowest answer since ``reset``."""

    def __init__(self, base: str) -> None:
        self.client = httpx.Client(base_url=base, timeout=600)
        self.longest = 0.0
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stopped.is_set():
            started = time.perf_counter()
            self.client.get("/health")
            self.longest = max(self.longest, time.perf_counter() - started)
            self.stopped.wait(0.02)

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join()


def write_config(root: Path, port: int, backend: str) -> Path:
    (root / "bindings").mkdir(parents=True)
    main = {
        "server": {"host": "127.0.0.1", "port": port},
        "paths": {"instance_bindings_folder": "bindings", "models_folder": "models"},
        "security": {"allowed_api_keys": [KEY]},
        "bindings_map": {"ears": "whisper_binding", "clean": "denoise_binding", "oai": "openai_binding"},
        "defaults": {"stt_binding": "ears", "audio2audio_binding": "clean", "i2i_binding": "oai"},
    }
    (root / "main_config.yaml").write_text(yaml.safe_dump(main), encoding="utf-8")
    instances = {
        "ears": {"type": "whisper_binding", "cpu_threads": 2},
        "clean": {"type": "denoise_binding"},
        "oai": {"type": "openai_binding", "base_url": f"{backend}/v1", "api_key": "sk-bench", "max_retries": 0,
                "default_model": "gpt-image-1"},
    }  # fmt: skip
    for name, values in instances.items():
        (root / "bindings" / f"{name}.yaml").write_text(yaml.safe_dump(values), encoding="utf-8")
    return root / "main_config.yaml"


def cases() -> list[tuple[str, str, dict[str, Any]]]:
    """(name, path, body) of each case."""
    three_hours = silence(3 * 3600)
    hour_mp3 = silence(3600, container="MP3", subtype="MPEG_LAYER_III")

    def audio(raw: bytes, task: str, mime: str) -> dict[str, Any]:
        item = {"type": "audio", "role": "input_audio", "data": b64(raw), "mime_type": mime}
        return {"generation_type": task, "input_data": [item]}

    def edit(size: int) -> dict[str, Any]:
        prompt = {"type": "text", "role": "user_prompt", "data": "a lighthouse"}
        image = {"type": "image", "role": "input_image", "data": b64(png(size, size, "RGB")), "mime_type": "image/png"}
        mask = {"type": "image", "role": "mask_image", "data": b64(png(size, size, "L")), "mime_type": "image/png"}
        return {"generation_type": "i2i", "input_data": [prompt, image, mask]}

    return [
        (f"whisper, 3 h FLAC ({len(three_hours) // 1024} KB)", "/api/v1/generate",
         audio(three_hours, "stt", "audio/flac")),
        ("whisper, 3 h FLAC whose header says 1 s", "/api/v1/generate",
         audio(flac_claiming(three_hours, 16000), "stt", "audio/flac")),
        ("whisper, 3 h FLAC without a length", "/api/v1/generate",
         audio(flac_claiming(three_hours, 0), "stt", "audio/flac")),
        (f"whisper, 1 h MP3 ({len(hour_mp3) // 1024} KB)", "/api/v1/generate", audio(hour_mp3, "stt", "audio/mpeg")),
        ("denoise, 3 h FLAC", "/api/v1/generate", audio(three_hours, "audio2audio", "audio/flac")),
        ("denoise, 3 h FLAC without a length", "/api/v1/generate",
         audio(flac_claiming(three_hours, 0), "audio2audio", "audio/flac")),
        ("openai_binding edit, 9000x9000 image and mask", "/api/v1/generate", edit(9000)),
        ("openai_binding edit, 4000x4000 (allowed)", "/api/v1/generate", edit(4000)),
    ]  # fmt: skip


def started(config: Path, port: int) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(
        [sys.executable, "-m", "lollms_server", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(3000):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit("the server did not start")


def main() -> None:
    fake = FakeOpenAI(image_model_ids=("gpt-image-1",))
    backend_port, port = free_port(), free_port()
    fake_server = uvicorn.Server(uvicorn.Config(fake.app(), host="127.0.0.1", port=backend_port, log_level="error"))
    threading.Thread(target=fake_server.run, daemon=True).start()
    base = f"http://127.0.0.1:{port}"
    print(f"{'case (a fresh server each)':50} status  seconds  peak RSS growth  longest /health")
    with tempfile.TemporaryDirectory() as folder:
        config = write_config(Path(folder), port, f"http://127.0.0.1:{backend_port}")
        for name, path, body in cases():
            server = started(config, port)
            try:
                client = httpx.Client(base_url=base, headers={"X-API-Key": KEY}, timeout=600)
                watch = HealthWatch(base)
                Path(f"/proc/{server.pid}/clear_refs").write_text("5")  # VmHWM := VmRSS
                before = status_kb(server.pid, "VmRSS")
                started_at = time.perf_counter()
                answer = client.post(path, json=body)
                seconds = time.perf_counter() - started_at
                growth = (status_kb(server.pid, "VmHWM") - before) / 1024
                watch.stop()
                detail = answer.json().get("detail", "") if answer.status_code >= 400 else ""
                print(f"{name:50} {answer.status_code:6} {seconds:8.2f} {growth:12.0f} MB {watch.longest:12.3f} s")
                if detail:
                    print(f"    {str(detail)[:150]}")
            finally:
                server.terminate()
                server.wait(30)
    fake_server.should_exit = True


if __name__ == "__main__":
    main()
