"""Request bodies of the Ollama API, as its clients send them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class OllamaBody(BaseModel):
    """A request naming a model."""

    # Newer clients send fields this server does not know yet (logprobs, truncate...): accepted, ignored.
    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1, description="A lollms model id; a trailing ':latest' is accepted.")


class SamplingBody(OllamaBody):
    """Fields shared by /api/chat and /api/generate."""

    stream: bool | None = Field(default=None, description="Stream NDJSON (the default, as in Ollama).")
    options: dict[str, Any] | None = Field(default=None, description="num_predict, temperature, top_k, top_p...")
    format: str | dict[str, Any] | None = Field(default=None, description="'json' or a JSON schema.")
    think: bool | str | None = None
    keep_alive: float | str | None = None

    @property
    def streams(self) -> bool:
        return self.stream is not False


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: str
    content: str | None = None
    images: list[str] | None = Field(default=None, description="Base64-encoded images.")


class ChatBody(SamplingBody):
    messages: list[ChatMessage] = Field(default_factory=list)
    tools: list[dict[str, Any]] | None = None


class GenerateBody(SamplingBody):
    prompt: str | None = None
    system: str | None = None
    suffix: str | None = None
    raw: bool = False
    images: list[str] | None = None


class ShowBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str | None = None
    name: str | None = Field(default=None, description="Older clients' spelling of model.")


class EmbedBody(OllamaBody):
    input: str | list[str] = Field(default_factory=list)


class EmbeddingsBody(OllamaBody):
    prompt: str = ""
