"""Driving the generation pipeline from any wire format: run to completion, or admit and stream."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from lollms_server.api.disconnect import until_disconnect
from lollms_server.api.pump import ChunkPump
from lollms_server.core.domain import GenerationRequest, OutputData
from lollms_server.core.events import GenerationEvent
from lollms_server.core.generation import GenerationService, PreparedGeneration
from lollms_server.core.resource_manager import ResourceSlot


async def run_to_completion(
    request: Request, service: GenerationService, body: GenerationRequest, request_id: str, raw_prompt: bool = False
) -> tuple[PreparedGeneration, list[OutputData]]:
    """Prepare and run; a client that disconnects cancels the work."""

    async def work() -> tuple[PreparedGeneration, list[OutputData]]:
        prepared = await service.prepare(body, request_id, raw_prompt=raw_prompt)
        return prepared, await service.run(prepared)

    return await until_disconnect(request, work())


# How long an endpoint waits for a stream's first event before it answers 200 and streams: failures in this
# window keep their status code; a slower start gets headers (and keep-alives) rather than silence.
EARLY_FAILURE_WAIT = 2.0


@dataclass
class StartedStream:
    """A running generation stream and what must happen when its response ends."""

    prepared: PreparedGeneration
    pump: ChunkPump
    slot: ResourceSlot | None

    async def close(self) -> None:
        await self.pump.close()
        if self.slot is not None:  # released by the stream itself unless it never got to start
            self.slot.release()


async def start_stream(
    request: Request,
    service: GenerationService,
    body: GenerationRequest,
    request_id: str,
    raw_prompt: bool = False,
    transform: Callable[[AsyncIterator[GenerationEvent]], AsyncIterator[Any]] | None = None,
) -> StartedStream:
    """Prepare, take the compute slot and start the stream before the first byte, so that failures up to its
    first event keep their status codes. ``transform`` (a wire format's conversion of our events) runs in the
    stream's task. The caller must ``close()`` it when the response ends."""

    async def prepare() -> tuple[PreparedGeneration, ResourceSlot | None]:
        prepared = await service.prepare(body, request_id, raw_prompt=raw_prompt)
        return prepared, await service.admit(prepared)

    prepared, slot = await until_disconnect(request, prepare())
    chunks = service.stream(prepared, slot)
    pump = ChunkPump(transform(chunks) if transform else chunks, f"stream-{request_id}")
    started = StartedStream(prepared, pump, slot)
    try:
        await until_disconnect(request, started.pump.raise_early_failure(EARLY_FAILURE_WAIT))
    except BaseException:
        await started.close()
        raise
    return started


def keepalive_seconds(service: GenerationService) -> float:
    return service.config.server.sse_keepalive_interval
