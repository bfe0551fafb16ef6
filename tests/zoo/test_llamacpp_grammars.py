"""Grammars from client schemas are built in a worker process: a build that hangs, dies or is abandoned is killed
and answered with a 400, the server process never runs it, and the next build gets a fresh worker."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
from pathlib import Path

import pytest

from lollms_server.core.errors import BadRequestError, UnavailableError
from tests.helpers import wait_until
from tests.zoo.test_llamacpp_binding import embedded_model

pytest.importorskip("llama_cpp", reason="install with ./run_tests.sh (builds llama-cpp-python)")
grammars = pytest.importorskip("zoos.bindings.llamacpp_binding.grammars", reason="needs the zoo importable")

ANSWER = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 32}}, "required": ["city"]}


def reader_present(fifo: Path) -> bool:
    """Whether a process has ``fifo`` open for reading (opening it to write without blocking fails otherwise)."""
    try:
        descriptor = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as exc:
        assert exc.errno == errno.ENXIO
        return False
    os.close(descriptor)
    return True


@pytest.fixture
def stuck_model(tmp_path: Path) -> Path:
    """A "model" whose reading blocks in llama.cpp's C code forever: a named pipe nobody writes to."""
    fifo = tmp_path / "stuck.gguf"
    os.mkfifo(fifo)
    return fifo


async def test_a_grammar_is_built_and_remembered() -> None:
    builder = grammars.GrammarBuilder(timeout=120, memory_mb=1024)
    try:
        text = await builder.build(embedded_model(), ANSWER, None, "response_format")
        again = await builder.build(embedded_model(), ANSWER, None, "response_format")
    finally:
        await builder.aclose()
    assert text.startswith("city-kv ::=") or "root ::=" in text
    assert again == text and builder.started == 1


async def test_a_grammar_llama_cpp_cannot_parse_is_a_400_and_the_worker_lives_on() -> None:
    builder = grammars.GrammarBuilder(timeout=120, memory_mb=1024)
    try:
        with pytest.raises(BadRequestError, match="no grammar can be built"):
            await builder.build(embedded_model(), {"type": "object"}, "root ::= undefined-rule", "tools")
        await builder.build(embedded_model(), ANSWER, None, "response_format")
    finally:
        await builder.aclose()
    assert builder.started == 1


async def test_a_build_past_its_deadline_is_killed_and_refused(stuck_model: Path) -> None:
    builder = grammars.GrammarBuilder(timeout=5, memory_mb=1024)
    try:
        with pytest.raises(BadRequestError, match="could not be built within 5 s"):
            await builder.build(stuck_model, ANSWER, None, "response_format")
        assert builder._process is None  # killed: nothing of it runs on
        text = await builder.build(embedded_model(), ANSWER, None, "response_format")  # a fresh worker serves
    finally:
        await builder.aclose()
    assert "root ::=" in text and builder.started == 2


async def test_a_build_whose_client_left_is_killed_at_once(stuck_model: Path) -> None:
    builder = grammars.GrammarBuilder(timeout=300, memory_mb=1024)
    build = asyncio.create_task(builder.build(stuck_model, ANSWER, None, "response_format"))
    await wait_until(lambda: reader_present(stuck_model))  # the worker is inside llama.cpp, blocked
    process = builder._process
    build.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await build
    assert await process.wait() == -9  # killed, not left to finish what nobody waits for
    await builder.aclose()


async def test_a_worker_that_cannot_start_is_a_503_and_not_remembered() -> None:
    # Too little memory to even import llama.cpp: the worker dies at its start; the schema is not to blame.
    builder = grammars.GrammarBuilder(timeout=120, memory_mb=8)
    try:
        with pytest.raises(UnavailableError, match="could not start"):
            await builder.build(embedded_model(), ANSWER, None, "response_format")
        builder.memory_mb = 1024  # the operator fixes the setting: the same schema builds
        text = await builder.build(embedded_model(), ANSWER, None, "response_format")
    finally:
        await builder.aclose()
    assert "root ::=" in text
