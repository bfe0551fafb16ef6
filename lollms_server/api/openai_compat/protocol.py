"""Wire models of the OpenAI API subset we serve. Unknown fields are accepted: clients send many."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow", protected_namespaces=())


class ChatMessage(_Open):
    role: str
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None


class SamplingFields(_Open):
    """Sampling fields shared by chat and text completions (plus the extras compatible servers accept)."""

    model: str
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, ge=0.0, le=1.0)
    seed: int | None = None
    stop: str | list[str] | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    n: int = Field(default=1, ge=1, le=1, description="Only one choice per request is supported.")
    top_k: int | None = None
    repeat_penalty: float | None = None
    repeat_last_n: int | None = None
    min_p: float | None = None
    personality: str | None = Field(default=None, description="lollms extension: a personality id or name.")


class ChatCompletionRequest(SamplingFields):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    response_format: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None


class CompletionRequest(SamplingFields):
    prompt: str | list[str]
    echo: bool = False


class EmbeddingRequest(_Open):
    model: str | None = None
    input: str | list[str] = Field(description="Text or list of texts (token arrays are not supported).")
    encoding_format: str = "float"
    input_type: str | None = Field(default=None, description="query or passage, for models that distinguish.")
