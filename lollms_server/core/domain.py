"""The domain's own types (spec section 7, "Data Models"): what goes into a generation, what comes out, the
stream's chunks, and the request every API translates its wire format into.

They live in the core so that the core depends on nothing of the HTTP edge; ``lollms_server.api.models``
re-exports them, so the spec's import path (used by scripted workflows) stays valid.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, Field

from lollms_server.core.errors import BadRequestError

InputType = Literal["text", "image", "audio", "video", "document"]
OutputType = Literal["text", "image", "audio", "video", "json", "error", "info", "function_call"]
ChunkType = Literal["chunk", "info", "error", "function_call", "final"]


def decode_base64(data: str) -> bytes | None:
    """The bytes of base64 text or of a base64 ``data:`` URL; None for anything else."""
    if data.startswith("data:"):
        header, _, data = data.partition(",")
        if not header.endswith(";base64"):
            return None
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return None


class InputData(BaseModel):
    """One piece of multimodal input."""

    type: InputType
    role: str = Field(description="How the item is used: user_prompt, system_context, input_image, ...")
    data: str = Field(description="Text, base64-encoded binary data, or a URL.")
    mime_type: str | None = None
    metadata: dict[str, Any] | None = None

    def binary(self) -> bytes:
        """The bytes of a binary item (base64, or a base64 ``data:`` URL); BadRequestError for a URL or bad data."""
        if self.data[:8].lower().startswith(("http://", "https://")):  # the pipeline fetches what it may
            raise BadRequestError(f"{self.role}: this URL was not fetched; send the data as base64")
        raw = decode_base64(self.data)
        if raw is None:
            raise BadRequestError(f"{self.role} is not valid base64 (nor a base64 data: URL)")
        return raw


class OutputData(BaseModel):
    """One piece of generated output."""

    type: OutputType
    data: Any
    mime_type: str | None = None
    thoughts: str | None = None
    metadata: dict[str, Any] | None = None


class StreamChunk(BaseModel):
    """One event of a generation stream."""

    type: ChunkType
    content: Any = None
    thoughts: str | None = None
    metadata: dict[str, Any] | None = None


@dataclass(frozen=True)
class GenerationRequest:
    """A generation as the core sees it, whichever API it came through."""

    input_data: list[InputData]
    personality: str | None = None
    binding_name: str | None = None
    model_name: str | None = None
    generation_type: str = "ttt"
    stream: bool = False
    parameters: dict[str, Any] = field(default_factory=dict)
