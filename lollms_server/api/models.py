"""Wire models of the API (spec section 7, "Data Models"). Workflows may import these too."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

InputType = Literal["text", "image", "audio", "video", "document"]
OutputType = Literal["text", "image", "audio", "video", "json", "error", "info"]
ChunkType = Literal["chunk", "info", "error", "function_call", "final"]


class InputData(BaseModel):
    """One piece of multimodal input."""

    type: InputType
    role: str = Field(description="How the item is used: user_prompt, system_context, input_image, ...")
    data: str = Field(description="Text, base64-encoded binary data, or a URL.")
    mime_type: str | None = None
    metadata: dict[str, Any] | None = None


class OutputData(BaseModel):
    """One piece of generated output."""

    type: OutputType
    data: Any
    mime_type: str | None = None
    thoughts: str | None = None
    metadata: dict[str, Any] | None = None


class GenerateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input_data: list[InputData] = Field(min_length=1)
    personality: str | None = None
    binding_name: str | None = None
    model_name: str | None = None
    generation_type: str = "ttt"
    stream: bool = False
    parameters: dict[str, Any] | None = None


class GenerateResponse(BaseModel):
    personality: str | None = None
    request_id: str
    output: list[OutputData]
    execution_time: float


class StreamChunk(BaseModel):
    type: ChunkType
    content: Any = None
    thoughts: str | None = None
    metadata: dict[str, Any] | None = None


class HealthResponse(BaseModel):
    status: str
    version: str
    api_key_required: bool


class ErrorResponse(BaseModel):
    """The one error body of every endpoint."""

    detail: str = Field(description="What went wrong and, where possible, what to fix.")
    code: str = Field(description="Stable machine-readable error kind.")
    request_id: str | None = None
    errors: list[dict[str, Any]] | None = Field(default=None, description="Field errors of a 422.")


class ListBindingsResponse(BaseModel):
    binding_types: dict[str, dict[str, Any]]
    binding_instances: dict[str, dict[str, Any]]


class ListActiveBindingsResponse(BaseModel):
    bindings: dict[str, dict[str, Any]]


class GetDefaultBindingsResponse(BaseModel):
    defaults: dict[str, Any]


class ListPersonalitiesResponse(BaseModel):
    personalities: dict[str, dict[str, Any]] = Field(description="Enabled personalities by id.")
    broken: dict[str, str] = Field(default_factory=dict, description="Personalities that failed to load: id -> reason.")
    name_collisions: dict[str, list[str]] = Field(
        default_factory=dict, description="`name` values shared by several personalities, with their ids."
    )


class ListFunctionsResponse(BaseModel):
    functions: list[str] = Field(description="Callable names, `<file stem>.<function>`.")
    details: dict[str, dict[str, Any]] = Field(default_factory=dict)
    problems: dict[str, str] = Field(default_factory=dict, description="Files or functions that were rejected.")


class ListModelsResponse(BaseModel):
    models: dict[str, list[str]]


class ModelInfo(BaseModel):
    model_config = ConfigDict(extra="allow", protected_namespaces=())

    name: str
    size: int | None = None
    modified_at: str | None = None
    quantization_level: str | None = None
    format: str | None = None
    family: str | None = None
    families: list[str] | None = None
    parameter_size: str | None = None
    context_size: int | None = None
    max_output_tokens: int | None = None
    template: str | None = None
    license: str | None = None
    homepage: str | None = None
    supports_vision: bool = False
    supports_audio: bool = False
    details: dict[str, Any] | None = None


class ListAvailableModelsResponse(BaseModel):
    binding_instance_name: str
    models: list[ModelInfo]


class GetModelInfoResponse(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    binding_instance_name: str
    model_name: str | None
    model_type: str | None = None
    context_size: int | None = None
    max_output_tokens: int | None = None
    supports_vision: bool = False
    supports_audio: bool = False
    supports_streaming: bool = False
    error: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)


class TokenizeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    text: str
    binding_name: str | None = None
    model_name: str | None = None
    add_bos: bool = False
    add_eos: bool = False


class TokenizeResponse(BaseModel):
    tokens: list[int]
    count: int


class DetokenizeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    tokens: list[int]
    binding_name: str | None = None
    model_name: str | None = None


class DetokenizeResponse(BaseModel):
    text: str


class CountTokensRequest(TokenizeRequest):
    pass


class CountTokensResponse(BaseModel):
    count: int
