"""Driving the generation pipeline from any wire format: run to completion, or admit and stream."""

from __future__ import annotations

from starlette.requests import Request

from lollms_server.api.disconnect import until_disconnect
from lollms_server.api.models import GenerateRequest, OutputData
from lollms_server.core.generation import GenerationService, PreparedGeneration
from lollms_server.core.resource_manager import ResourceSlot


async def run_to_completion(
    request: Request, service: GenerationService, body: GenerateRequest, request_id: str, raw_prompt: bool = False
) -> tuple[PreparedGeneration, list[OutputData]]:
    """Prepare and run; a client that disconnects cancels the work."""

    async def work() -> tuple[PreparedGeneration, list[OutputData]]:
        prepared = await service.prepare(body, request_id, raw_prompt=raw_prompt)
        return prepared, await service.run(prepared)

    return await until_disconnect(request, work())


async def admit_stream(
    request: Request, service: GenerationService, body: GenerateRequest, request_id: str, raw_prompt: bool = False
) -> tuple[PreparedGeneration, ResourceSlot | None]:
    """Prepare and take the compute slot before the first byte, so failures keep their status codes.

    The caller hands the slot to the stream and must release it when the response ends (``on_close``).
    """

    async def work() -> tuple[PreparedGeneration, ResourceSlot | None]:
        prepared = await service.prepare(body, request_id, raw_prompt=raw_prompt)
        return prepared, await service.admit(prepared)

    return await until_disconnect(request, work())


def keepalive_seconds(service: GenerationService) -> float:
    return float(service.config.section("server")["sse_keepalive_interval"])
