"""Wire models of the API (spec section 7, "Data Models"). Workflows may import these too."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

# The domain's types, re-exported here: the spec's import path for workflows and clients.
from lollms_server.core.domain import ChunkType as ChunkType
from lollms_server.core.domain import GenerationRequest
from lollms_server.core.domain import InputData as InputData
from lollms_server.core.domain import InputType as InputType
from lollms_server.core.domain import OutputData as OutputData
from lollms_server.core.domain import OutputType as OutputType
from lollms_server.core.domain import StreamChunk as StreamChunk


class GenerateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input_data: list[InputData] = Field(min_length=1)
    personality: str | None = None
    binding_name: str | None = None
    model_name: str | None = None
    generation_type: str = "ttt"
    stream: bool = False
    parameters: dict[str, Any] | None = None

    def to_domain(self) -> GenerationRequest:
        """The request as the core sees it."""
        return GenerationRequest(
            input_data=list(self.input_data),
            personality=self.personality,
            binding_name=self.binding_name,
            model_name=self.model_name,
            generation_type=self.generation_type,
            stream=self.stream,
            parameters=dict(self.parameters or {}),
        )


class GenerateResponse(BaseModel):
    personality: str | None = None
    request_id: str
    output: list[OutputData]
    execution_time: float


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


class TaskInfo(BaseModel):
    description: str
    output: str = Field(description="The modality it produces: text, image, audio or video.")
    needs_prompt: bool
    required_inputs: list[str] = Field(description="input_data roles it cannot do without.")
    optional_inputs: list[str] = Field(description="input_data roles it uses when given (mask_image).")
    default_binding: str | None = Field(description="The instance used when a request names none, if active.")
    bindings: list[str] = Field(description="Active instances whose input and output modalities fit the task.")
    parameters: dict[str, Any] = Field(description="JSON Schema of the task's `parameters`.")


class ListTasksResponse(BaseModel):
    tasks: dict[str, TaskInfo] = Field(description="Generation types by name.")


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
