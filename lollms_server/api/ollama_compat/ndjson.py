"""Streaming Ollama answers as newline-delimited JSON, with errors inside the stream as Ollama sends them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
from starlette.types import Receive, Scope, Send

from lollms_server.api.ollama_compat.reply import Reply
from lollms_server.api.streaming import EventStreamResponse, stream_error_message
from lollms_server.core.events import Completed, GenerationEvent, SideEvent, TextDelta
from lollms_server.core.json_text import json_bytes
from lollms_server.core.tools import FUNCTION_CALL, is_client_call


class NdjsonResponse(EventStreamResponse):
    """A stream of JSON lines that always runs ``on_close`` (the compute slot is released) and closes its lines."""

    media_type = "application/x-ndjson"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            # A client that left mid-send leaves the lines suspended: close them now, not when collected.
            close = getattr(self.body_iterator, "aclose", None)
            if close is not None:
                with anyio.CancelScope(shield=True):
                    await close()


def encode_line(value: dict[str, Any]) -> bytes:
    return json_bytes(value) + b"\n"


async def ndjson_lines(events: AsyncIterator[GenerationEvent], reply: Reply, request_id: str) -> AsyncIterator[bytes]:
    """Pieces, then the done object; a failure becomes a last {"error": ...} line (the SDK raises it).

    No keep-alive lines: clients parse every line as JSON. A client that leaves cancels the iteration,
    which stops the generation inside ``events``.
    """
    streamed = False
    try:
        async for event in events:
            if isinstance(event, TextDelta):
                streamed = True
                yield encode_line(reply.streamed(event.text, event.thoughts))
            elif (
                isinstance(event, SideEvent)
                and event.kind == FUNCTION_CALL
                and reply.chat
                and is_client_call(event.content)
            ):
                yield encode_line(reply.piece("", calls=[event.content]))
            elif isinstance(event, SideEvent) and event.kind == "error":
                yield encode_line({"error": str(event.content or "generation failed")})
                return
            elif isinstance(event, Completed):
                # A workflow that returned its answer whole streamed nothing: the done object carries it.
                done = reply.done(event.metadata) if streamed else reply.complete(event.outputs, event.metadata)
                yield encode_line(done)
    except Exception as exc:
        yield encode_line({"error": stream_error_message(exc, request_id)})
    finally:
        close = getattr(events, "aclose", None)
        if close is not None:  # an early return leaves the generation suspended: stop it now
            await close()
