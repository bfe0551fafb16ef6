"""Server-Sent Events at the edge: encoding, keep-alive comments, errors inside the stream, cleanup."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from lollms_server.api.pump import ChunkPump, End
from lollms_server.core.errors import LollmsError
from lollms_server.core.json_text import json_bytes

logger = logging.getLogger(__name__)

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
KEEPALIVE_COMMENT = b": keep-alive\n\n"
_MAX_BATCH = 512  # chunks already waiting are written together: one send for many small events


def encode_event(chunk: dict[str, Any]) -> bytes:
    return b"data: " + json_bytes(chunk) + b"\n\n"


def encode_named_event(chunk: dict[str, Any]) -> bytes:
    """An event whose SSE name is its ``type`` (Anthropic's streams: clients dispatch on the name)."""
    return f"event: {chunk.get('type', 'message')}\n".encode() + encode_event(chunk)


def stream_error_message(exc: BaseException, request_id: str | None) -> str:
    """What a client may read about a failure inside a stream: our errors say it, others only the request id."""
    if isinstance(exc, LollmsError):
        return str(exc)
    logger.error("Stream of request %s failed", request_id, exc_info=exc)
    return f"internal server error; quote request id {request_id} when reporting it"


def error_chunk(exc: BaseException, request_id: str | None) -> dict[str, Any]:
    """A StreamChunk of type error."""
    message = stream_error_message(exc, request_id)
    return {"type": "error", "content": message, "thoughts": None, "metadata": {"request_id": request_id}}


async def sse_events(
    pump: ChunkPump,
    *,
    keepalive_seconds: float,
    request_id: str | None,
    error_event: Callable[[BaseException, str | None], dict[str, Any]] = error_chunk,
    done_marker: bytes = b"",
    to_wire: Callable[[Any], dict[str, Any]] | None = None,
    named_events: bool = False,
) -> AsyncIterator[bytes]:
    """Encode a pump's events as SSE, reading its queue directly (``to_wire`` turns each into its wire dict; by
    default they already are). A keep-alive comment goes out whenever nothing came for ``keepalive_seconds``; a
    failure becomes ``error_event`` and ends the stream; ``done_marker`` closes a stream that finished. Events
    already waiting are sent in one write; ``named_events`` names each event after its type."""
    encode = encode_named_event if named_events else encode_event
    queue = pump.queue
    while True:
        try:
            item = queue.get_nowait()
        except asyncio.QueueEmpty:
            try:
                with anyio.fail_after(keepalive_seconds):
                    item = await queue.get()
            except TimeoutError:
                yield KEEPALIVE_COMMENT
                continue
        batch = [item]
        while len(batch) < _MAX_BATCH and not queue.empty():
            batch.append(queue.get_nowait())
        body: list[bytes] = []
        for entry in batch:
            if isinstance(entry, End):
                body.append(encode(error_event(entry.error, request_id)) if entry.error else done_marker)
                yield b"".join(body)
                return
            body.append(encode(to_wire(entry) if to_wire else entry))
        yield b"".join(body)


class EventStreamResponse(StreamingResponse):
    """A StreamingResponse that always awaits ``on_close``, even if the body was never iterated."""

    media_type = "text/event-stream"

    def __init__(self, content: AsyncIterator[bytes], on_close: Callable[[], Awaitable[None]] | None = None) -> None:
        super().__init__(content, headers=SSE_HEADERS)
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            if self._on_close is not None:
                with anyio.CancelScope(shield=True):
                    await self._on_close()
