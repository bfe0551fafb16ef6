"""Request bodies of the Ollama API, as its clients send them, and its error body.

Each field Ollama defines is served, accepted because it does not change the answer (``keep_alive``), or
listed in a ``REFUSED`` table with why: a field that would change the answer is refused with 400, never
dropped. Fields Ollama does not define (newer clients add some) are accepted and logged as ignored.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from lollms_server.api.error_shapes import ErrorShape
from lollms_server.api.wire_fields import Refusal

_NOT_YET = "is not supported by lollms_server's Ollama API yet"


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class OllamaBody(_Open):
    """A request naming a model."""

    REFUSED: ClassVar[tuple[Refusal, ...]] = ()

    model: str = Field(min_length=1, description="A lollms model id; a trailing ':latest' is accepted.")
    keep_alive: float | str | None = Field(
        default=None, description="Accepted; the binding instance decides when models unload (0 still says so)."
    )
    options: dict[str, Any] | None = Field(
        default=None,
        description="num_predict, temperature, top_k, top_p...; options that configure loading (num_ctx, num_gpu, "
        "num_thread...) are left to the binding instance's configuration.",
    )


class SamplingBody(OllamaBody):
    """Fields shared by /api/chat and /api/generate."""

    REFUSED: ClassVar[tuple[Refusal, ...]] = (
        Refusal("logprobs", bool, f"logprobs {_NOT_YET}"),
        Refusal("top_logprobs", bool, f"top_logprobs {_NOT_YET}"),
    )

    stream: bool | None = Field(default=None, description="Stream NDJSON (the default, as in Ollama).")
    format: str | dict[str, Any] | None = Field(default=None, description="'json' or a JSON schema.")
    think: bool | str | None = None
    logprobs: bool | None = Field(default=None, description="Refused with 400 when true (not supported yet).")
    top_logprobs: int | None = Field(default=None, description="Refused with 400 when above 0 (not supported yet).")

    @property
    def streams(self) -> bool:
        return self.stream is not False


class ChatMessage(_Open):
    REFUSED: ClassVar[tuple[Refusal, ...]] = ()

    role: str
    content: str | None = None
    images: list[str] | None = Field(default=None, description="Base64-encoded images.")
    thinking: str | None = Field(default=None, description="Accepted; earlier reasoning is not shown to the model.")
    tool_calls: list[dict[str, Any]] | None = Field(
        default=None, description="An assistant message's calls: [{function: {name, arguments}}]."
    )
    tool_name: str | None = Field(default=None, description="The tool a role 'tool' message answers.")


class ChatBody(SamplingBody):
    REFUSED: ClassVar[tuple[Refusal, ...]] = SamplingBody.REFUSED

    messages: list[ChatMessage] = Field(default_factory=list)
    tools: list[dict[str, Any]] | None = Field(default=None, description="Function tools the model may call.")


class GenerateBody(SamplingBody):
    REFUSED: ClassVar[tuple[Refusal, ...]] = (
        *SamplingBody.REFUSED,
        Refusal("suffix", bool, "suffix (fill-in-the-middle) is not supported by lollms_server's Ollama API"),
        Refusal(
            "template",
            bool,
            "template is not supported: the binding applies the model's own chat template "
            "(send raw: true with a prompt you formatted yourself)",
        ),
        Refusal(
            "context",
            bool,
            "context (the state an earlier /api/generate answer returned) is not supported: "
            "send the whole conversation to /api/chat",
        ),
    )

    prompt: str | None = None
    system: str | None = None
    suffix: str | None = Field(default=None, description="Refused with 400 when not empty.")
    template: str | None = Field(default=None, description="Refused with 400 when not empty.")
    context: list[int] | None = Field(default=None, description="Refused with 400 when not empty (deprecated).")
    raw: bool = False
    images: list[str] | None = None


class ShowBody(_Open):
    model: str | None = None
    name: str | None = Field(default=None, description="Older clients' spelling of model.")
    verbose: bool | None = Field(default=None, description="Accepted; the answer is the same.")


class EmbedBody(OllamaBody):
    input: str | list[str] = Field(default_factory=list)
    truncate: bool | None = Field(
        default=None, description="Cut texts longer than the model's context (the default, as in Ollama)."
    )
    dimensions: int | None = Field(
        default=None, ge=1, description="Accepted only when it is the model's own size (400 otherwise)."
    )


class EmbeddingsBody(OllamaBody):
    prompt: str = ""


class OllamaErrorResponse(BaseModel):
    """The error body of the Ollama-compatible API (the ollama SDKs raise it as ResponseError)."""

    error: str = Field(description="What went wrong and, where possible, what to fix.")


def _ollama_error(
    status: int, code: str, detail: str, request_id: str | None, errors: list[dict[str, Any]] | None
) -> dict[str, Any]:
    return {"error": detail}


# Ollama's /api/ (ours is /api/v1/).
ERROR_SHAPE = ErrorShape(("/api/",), _ollama_error, OllamaErrorResponse, except_prefixes=("/api/v1/",))
