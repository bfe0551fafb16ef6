"""llama.cpp tuning: the stream batches tokens (``stream_interval_ms``) into one piece of text per hand-over but
hands the first text over at once (even after the empty role chunk a chat stream begins with); threads default to
the physical cores."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

runner = pytest.importorskip("zoos.bindings.llamacpp_binding.runner", reason="needs the zoo importable")


def chunk(content: str | None, finish: str | None = None) -> dict[str, Any]:
    delta = {"role": "assistant"} if content is None else {"content": content}
    return {"choices": [{"delta": delta, "finish_reason": finish}]}


async def test_the_first_token_is_handed_over_at_once_then_tokens_are_batched() -> None:
    received_first = threading.Event()

    def completion() -> Iterator[dict[str, Any]]:
        yield chunk(None)  # the role chunk: no text
        yield chunk("Hello")
        # The consumer must have the first token before the next one exists; a batch held for an hour would
        # leave this waiting (and the test failing after the bound below).
        assert received_first.wait(timeout=60), "the first token was held back"
        yield chunk(" wor")
        yield chunk("ld", "stop")

    batches = []
    async for batch in runner.stream_batches(completion, hand_over_every=3600.0):
        batches.append(tuple(batch))
        if batch.text == "Hello":
            received_first.set()
    # The role chunk went out first (nothing was due to wait for); the tokens after the first come as one batch.
    assert batches == [("", 0, None), ("Hello", 1, None), (" world", 2, "stop")]


class Clock:
    """A monotonic clock the test sets: the seconds since boot of a machine, whatever this one's uptime."""

    def __init__(self, now: float) -> None:
        self.now = now

    def monotonic(self) -> float:
        return self.now


async def test_the_first_piece_is_due_on_a_machine_that_just_booted(monkeypatch: pytest.MonkeyPatch) -> None:
    """time.monotonic() counts from boot on Linux: half a second after boot, with a hand-over every hour, the role
    chunk still goes out on its own (nothing was handed over yet, so it is due), then the first token."""
    monkeypatch.setattr(runner, "time", Clock(0.5))

    def completion() -> Iterator[dict[str, Any]]:
        yield chunk(None)
        yield chunk("Hello")
        yield chunk(" wor")
        yield chunk("ld", "stop")

    batches = [tuple(batch) async for batch in runner.stream_batches(completion, hand_over_every=3600.0)]
    assert batches == [("", 0, None), ("Hello", 1, None), (" world", 2, "stop")]


async def test_a_token_waits_until_the_next_hand_over_is_due(monkeypatch: pytest.MonkeyPatch) -> None:
    """The batching follows the clock, not the speed of the machine: the completion itself moves the clock on
    (a token every 3 s, one hand-over every 10 s), so the batches are the same on any machine."""
    clock = Clock(2.0)
    monkeypatch.setattr(runner, "time", clock)

    def completion() -> Iterator[dict[str, Any]]:
        for token in ["a", "b", "c", "d", "e", "f"]:
            yield chunk(token)  # read at clock.now, then the clock moves on while the "model" computes
            clock.now += 3.0
        yield chunk("", "stop")

    batches = [tuple(batch) async for batch in runner.stream_batches(completion, hand_over_every=10.0)]
    # a at 2 s (the first text: at once); b, c, d at 5, 8, 11 s wait (the next hand-over is due at 12 s); e at 14 s
    # goes with them; f and the finish, at 17 and 20 s, wait for the end of the completion.
    assert batches == [("a", 1, None), ("bcde", 4, None), ("f", 1, "stop")]


def test_threads_default_to_the_physical_cores_for_generation_and_prompts(tmp_path: Path) -> None:
    from lollms_server.core.resource_manager import ResourceManager

    binding = pytest.importorskip("zoos.bindings.llamacpp_binding", reason="needs the zoo importable")
    models = pytest.importorskip("zoos.bindings.llamacpp_binding.models", reason="needs the zoo importable")
    cores = binding.physical_cores()
    assert 1 <= cores <= (os.cpu_count() or 1)
    model = models.ModelFile("m", tmp_path / "m.gguf", tmp_path / "m.gguf", "configured")
    default = binding.LlamaCppBinding({"type": "llamacpp_binding"}, ResourceManager())
    chosen = binding.LlamaCppBinding(
        {"type": "llamacpp_binding", "n_threads": 3, "n_threads_batch": 5}, ResourceManager()
    )
    settings = default._settings(model, binding.GENERATION)
    assert settings["n_threads"] == settings["n_threads_batch"] == cores
    chosen_settings = chosen._settings(model, binding.GENERATION)
    assert (chosen_settings["n_threads"], chosen_settings["n_threads_batch"]) == (3, 5)


async def test_a_request_looks_at_its_model_file_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The catalog (and its memory of recent resolutions) lives as long as the instance's settings: the steps of a
    request after the first resolution touch no file, on the event loop or off it."""
    from lollms_server.core.resource_manager import ResourceManager

    binding = pytest.importorskip("zoos.bindings.llamacpp_binding", reason="needs the zoo importable")
    models = pytest.importorskip("zoos.bindings.llamacpp_binding.models", reason="needs the zoo importable")
    folder = tmp_path / "gguf"
    folder.mkdir()
    (folder / "tiny.gguf").write_bytes(b"GGUF" + b"\0" * 60)
    instance = binding.LlamaCppBinding({"type": "llamacpp_binding", "default_model": "tiny.gguf"}, ResourceManager())
    instance.models_folder = tmp_path
    looked_up: list[str | None] = []
    resolve = models.ModelCatalog._resolve
    monkeypatch.setattr(
        models.ModelCatalog, "_resolve", lambda self, name: looked_up.append(name) or resolve(self, name)
    )
    name = await instance.resolve_model(None)
    for _ in range(3):  # the checks, residency and generation of the same request
        assert instance.catalog.resolve(name).name == name
        assert await instance.resolve_model(name) == name
    assert instance.catalog is instance.catalog
    assert looked_up == [None, name]  # once for the request's own name, once for the name it resolved to
    instance.models_folder = tmp_path / "elsewhere"  # new settings: a new catalog, nothing remembered
    assert instance.catalog.recent(None) is None
