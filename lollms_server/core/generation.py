"""The generation pipeline: request -> personality, binding, model, parameters -> outputs or a stream.

One path for both modes: ``prepare`` resolves and validates everything that can fail with a proper
status code (before the first byte of a stream), ``run`` produces the complete outputs, ``stream``
yields StreamChunk-shaped dicts ending with a ``final`` chunk.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import anyio
from pydantic import ValidationError

from lollms_server.core.api_keys import current_principal
from lollms_server.core.artifacts import ArtifactStore
from lollms_server.core.binding_manager import BindingManager
from lollms_server.core.bindings import Binding, GenerateResult
from lollms_server.core.config import ServerConfig
from lollms_server.core.domain import GenerationRequest, InputData, OutputData, decode_base64
from lollms_server.core.errors import (
    BadRequestError,
    CapabilityError,
    LollmsError,
    NotFoundError,
    UnavailableError,
)
from lollms_server.core.events import (
    Completed,
    GenerationEvent,
    MediaDelta,
    OutputAccumulator,
    SideEvent,
    event_of,
)
from lollms_server.core.generation_record import GenerationObserver, GenerationRecord, notify
from lollms_server.core.limits import check_name
from lollms_server.core.media_inputs import check_media
from lollms_server.core.model_access import checked_model
from lollms_server.core.model_residency import ModelKey
from lollms_server.core.nested import nested_generators
from lollms_server.core.parameters import layer_parameters
from lollms_server.core.quotas import Reservation, TokenBudget
from lollms_server.core.resource_manager import ResourceManager, ResourceSlot
from lollms_server.core.tasks import task_of
from lollms_server.core.think import split_thoughts
from lollms_server.core.tools import TOOL_RESULT_ROLE, calls_of_metadata, openai_tool_calls
from lollms_server.core.tracing import span
from lollms_server.core.url_inputs import UrlInputs
from lollms_server.core.workflows import WorkflowCall, collect_workflow, stream_workflow

logger = logging.getLogger(__name__)

CONVERSATION_ROLES = {
    "system_context": "system",
    "user_prompt": "user",
    "assistant_reply": "assistant",
    TOOL_RESULT_ROLE: "tool",
}
# parameters.output_format, valid for every task: binary outputs inline (base64), stored (a URL path), or, when the
# request does not say, inline unless larger than artifacts.inline_max_bytes.
OUTPUT_FORMATS = ("base64", "url")
AUTO_OUTPUT_FORMAT = "auto"
BINARY_OUTPUT_TYPES = ("image", "audio", "video")


@dataclass(frozen=True)
class AppliedPersonality:
    """What a personality contributes to a request: conditioning, parameters, maybe a workflow."""

    name: str
    system_prompt: str | None = None
    parameters: Mapping[str, Any] = field(default_factory=dict)
    workflow: Callable[..., Any] | None = None
    personality: Any = None


class PersonalityResolver(Protocol):
    async def resolve(self, name: str) -> AppliedPersonality: ...


class NoPersonalities:
    """The resolver in force while no personality system is loaded: every name is unknown."""

    async def resolve(self, name: str) -> AppliedPersonality:
        raise NotFoundError(f"personality '{name}' not found")


@dataclass
class Conversation:
    system_prompt: str | None
    messages: list[dict[str, Any]]
    prompt: str
    multimodal: list[InputData]


def _turn(role: str, item: InputData) -> dict[str, Any]:
    """One message of the conversation, in OpenAI's shape (what bindings get in ``request_info["messages"]``)."""
    turn: dict[str, Any] = {"role": role, "content": item.data}
    try:
        if role == "assistant" and (calls := calls_of_metadata(item.metadata)):
            turn["tool_calls"] = openai_tool_calls(calls)
    except ValueError as exc:
        raise BadRequestError(f"assistant_reply: {exc}") from None
    if role == "tool":
        call_id = (item.metadata or {}).get("tool_call_id")
        if not isinstance(call_id, str) or not call_id:
            raise BadRequestError(
                f"a {TOOL_RESULT_ROLE} item needs metadata.tool_call_id (the id of the call it answers)"
            )
        turn["tool_call_id"] = call_id
        if isinstance((item.metadata or {}).get("name"), str):
            turn["name"] = item.metadata["name"]  # type: ignore[index]
    return turn


def _conversation_role(item: InputData) -> str | None:
    """The role a text item plays in the turns (system, user, assistant, tool); None for media and documents."""
    return CONVERSATION_ROLES.get(item.role) if item.type == "text" else None


def media_items(items: list[InputData]) -> list[InputData]:
    """The items that are not conversation turns (images, audio, documents...), in order."""
    return [item for item in items if _conversation_role(item) is None]


def build_conversation(items: list[InputData], personality_system: str | None) -> Conversation:
    """Input items in order: system texts join the system message; prompts, replies (with their tool calls) and
    tool results form the turns."""
    system_parts = [personality_system] if personality_system else []
    turns: list[dict[str, Any]] = []
    for item in items:
        role = _conversation_role(item)
        if role == "system":
            system_parts.append(item.data)
        elif role is not None:
            turns.append(_turn(role, item))
    multimodal = media_items(items)
    system_prompt = "\n\n".join(part for part in system_parts if part) or None
    messages = ([{"role": "system", "content": system_prompt}] if system_prompt else []) + turns
    user_turns = [turn["content"] for turn in turns if turn["role"] == "user"]
    return Conversation(system_prompt, messages, user_turns[-1] if user_turns else "", multimodal)


@dataclass
class PreparedGeneration:
    """A request resolved and validated, ready to run or stream."""

    request_id: str
    personality: str | None
    binding_name: str
    binding: Binding
    model_name: str | None
    parameters: dict[str, Any]
    conversation: Conversation
    uses_compute_slot: bool
    workflow_call: WorkflowCall | None = None
    raw_prompt: bool = False
    prompt_tokens: int | None = None
    model_key: ModelKey | None = None
    generation_type: str = "ttt"
    output_format: str = AUTO_OUTPUT_FORMAT
    reservation: Reservation | None = None  # the tokens counted before it runs, under its key's token limits

    @property
    def request_info(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "binding_instance_name": self.binding_name,
            "model_name": self.model_name,
            "personality": self.personality,
            "messages": self.conversation.messages,
            "system_prompt": self.conversation.system_prompt,
            "raw_prompt": self.raw_prompt,
            "prompt_tokens": self.prompt_tokens,
            "generation_type": self.generation_type,
        }


def normalize_outputs(result: GenerateResult | list[Any], model_name: str | None) -> list[OutputData]:
    """A binding's str / dict / list of dicts as OutputData, with <think> blocks moved to thoughts."""
    items = result if isinstance(result, list) else [result]
    outputs = []
    for item in items:
        raw = {"type": "text", "data": item} if isinstance(item, str) else dict(item)
        try:
            output = OutputData.model_validate(raw)
        except ValidationError as exc:
            raise LollmsError(f"binding returned malformed output: {exc}") from exc
        if output.type == "text" and isinstance(output.data, str):
            output.data, found = split_thoughts(output.data)
            if found:
                output.thoughts = f"{output.thoughts}\n\n{found}" if output.thoughts else found
        if model_name and output.type not in ("error", "info"):
            output.metadata = {"model": model_name, **(output.metadata or {})}
        outputs.append(output)
    return outputs


class GenerationService:
    """Runs /generate requests over the binding manager, the resource manager and personalities."""

    def __init__(
        self,
        config: ServerConfig,
        bindings: BindingManager,
        resources: ResourceManager,
        personalities: PersonalityResolver | None = None,
        functions: Any = None,
        artifacts: ArtifactStore | None = None,
    ) -> None:
        self.config = config
        self.bindings = bindings
        self.resources = resources
        self.personalities: PersonalityResolver = personalities or NoPersonalities()
        self.functions = functions
        self.artifacts = artifacts
        self.limits = config.input_limits
        self.inline_max_bytes = int(config.section("artifacts")["inline_max_bytes"])
        self.url_inputs = UrlInputs(config.url_input_policy)
        self.observers: list[GenerationObserver] = []  # per-key usage, metrics: told about every generation
        self.token_budget: TokenBudget | None = None  # per-key token limits, reserved before a generation runs
        self.active_streams = 0

    async def prepare(
        self, request: GenerationRequest, request_id: str, raw_prompt: bool = False
    ) -> PreparedGeneration:
        """Resolve and check everything; ``raw_prompt`` asks for a plain text completion (no chat template)."""
        self.limits.check_items(request.input_data)
        for field_name in ("binding_name", "model_name", "personality", "generation_type"):
            check_name(field_name, getattr(request, field_name))
        task = task_of(request.generation_type)
        request_parameters, output_format = self._split_output_format(request.parameters)
        personality = await self.personalities.resolve(request.personality) if request.personality else None
        binding_name = self.config.binding_for(task.name, request.binding_name)
        binding = await self.bindings.get_binding(binding_name)
        runs = binding.get_supported_tasks()
        if task.name not in runs:
            raise CapabilityError(
                f"binding '{binding_name}' does not run '{task.name}' ({task.description}); it runs: "
                f"{', '.join(runs) or 'no generation task'}"
            )
        # The key's models and personalities are checked where names are resolved (core.model_access).
        model_name = await checked_model(
            binding_name, binding, request.model_name or binding.default_model_for(task.name)
        )
        conversation = build_conversation(request.input_data, personality.system_prompt if personality else None)
        task.check_inputs(conversation.prompt, {item.role for item in conversation.multimodal})
        workflow = personality.workflow if personality else None
        for item in conversation.multimodal if workflow is None else ():  # a workflow decides what its inputs feed
            if not binding.model_supports_input(model_name, item.type, item.role):
                raise BadRequestError(
                    f"binding '{binding_name}' with model '{model_name}' does not accept {item.type} input "
                    f"with role '{item.role}'"
                )
        if conversation.multimodal:  # URLs become data once the request is known to be servable
            request = replace(request, input_data=await self.url_inputs.resolve(request.input_data))
            # Every image and audio item measured from its header before any binding decodes it
            await anyio.to_thread.run_sync(check_media, request.input_data, self.limits)
            conversation = replace(conversation, multimodal=media_items(request.input_data))  # the turns are text
        parameters = layer_parameters(
            {"max_tokens": self.config.defaults["default_max_output_tokens"]} if task.default_max_tokens else None,
            personality.parameters if personality and task.output == "text" else None,
            task.validate(request_parameters, self.limits),
        )
        if parameters.get("response_format") and not binding.supports_structured_output():
            raise BadRequestError(
                f"binding '{binding_name}' cannot constrain its output to JSON (response_format); "
                "use a binding that can, such as llamacpp_binding or openai_binding"
            )
        prepared = PreparedGeneration(
            request_id=request_id,
            personality=personality.name if personality else None,
            binding_name=binding_name,
            binding=binding,
            model_name=model_name,
            parameters=parameters,
            conversation=conversation,
            # A workflow decides what runs: the bindings it calls take their own compute slots.
            uses_compute_slot=workflow is None and bool(binding.get_resource_requirements().get("gpu_required")),
            raw_prompt=raw_prompt,
            output_format=output_format,
            generation_type=task.name,
        )
        if workflow is None:
            prepared.prompt_tokens = await binding.count_prompt_tokens(
                conversation.prompt, dict(parameters), prepared.request_info
            )
            prepared.model_key = binding.residency_key(model_name)
        if personality is not None and workflow is not None:
            prepared.workflow_call = WorkflowCall(
                workflow=workflow,
                personality_id=personality.name,
                prompt=conversation.prompt,
                params=dict(parameters),
                context=self._workflow_context(request, prepared, personality),
            )
        return prepared

    def _split_output_format(self, parameters: Mapping[str, Any] | None) -> tuple[dict[str, Any], str]:
        """The task's parameters without ``output_format``, and the output format (checked)."""
        rest = dict(parameters or {})
        output_format = rest.pop("output_format", None) or AUTO_OUTPUT_FORMAT
        if output_format not in (*OUTPUT_FORMATS, AUTO_OUTPUT_FORMAT):
            raise BadRequestError(
                f"parameters.output_format = {output_format!r}: allowed: {' or '.join(map(repr, OUTPUT_FORMATS))}"
            )
        if output_format == "url" and self.artifacts is None:
            raise UnavailableError("output_format 'url' needs the artifact store, which is not running")
        return rest, output_format

    async def deliver(self, prepared: PreparedGeneration, outputs: list[OutputData]) -> list[OutputData]:
        """Outputs as the request asked: with ``output_format: url`` each base64 image, audio or video goes to
        the artifact store and its ``data`` becomes the path it is served at; when the request did not say, only
        those larger than ``artifacts.inline_max_bytes`` do (a long video never travels as base64 in JSON)."""
        if prepared.output_format == "base64" or self.artifacts is None:
            return outputs
        for output in outputs:
            if output.type not in BINARY_OUTPUT_TYPES or not isinstance(output.data, str):
                continue
            if prepared.output_format == AUTO_OUTPUT_FORMAT and len(output.data) * 3 // 4 <= self.inline_max_bytes:
                continue
            data = await anyio.to_thread.run_sync(decode_base64, output.data)
            if data is None:  # already a URL, or not base64: passed on as the binding gave it
                continue
            artifact = await self.artifacts.put(data, output.mime_type, current_principal.get())
            output.data = artifact.path
            output.mime_type = artifact.mime_type
            output.metadata = {
                **(output.metadata or {}),
                "artifact_id": artifact.id,
                "size": artifact.size,
                "expires_at": int(artifact.expires_at),
            }
        return outputs

    def _workflow_context(
        self, request: GenerationRequest, prepared: PreparedGeneration, personality: AppliedPersonality
    ) -> dict[str, Any]:
        request_info = prepared.request_info
        return {
            "binding": prepared.binding,
            "binding_name": prepared.binding_name,
            "model_name": prepared.model_name,
            "config": self.config,
            "function_manager": self.functions,
            "binding_manager": self.bindings,
            "resource_manager": self.resources,
            "input_data": list(request.input_data),
            "personality": personality.personality,
            "request_info": request_info,
            "stream": request.stream,
            **nested_generators(self._run_nested, prepared.request_id, prepared.binding_name, prepared.model_name),
        }

    async def _run_nested(self, request: GenerationRequest, request_id: str) -> list[OutputData]:
        """A workflow's own generation: prepared, admitted and run like any request."""
        return await self.run(await self.prepare(request, request_id))

    async def admit(self, prepared: PreparedGeneration) -> ResourceSlot | None:
        """The key's tokens reserved (``_reserve``), then a compute slot for bindings that need one
        (QueueTimeoutError when the queue is too slow: the reservation is given back)."""
        await self._reserve(prepared)
        if not prepared.uses_compute_slot:
            return None
        try:
            with span("lollms.admission", binding=prepared.binding_name):
                return await self.resources.admit(
                    f"generate {prepared.request_id} on {prepared.binding_name}", model=prepared.model_key
                )
        except BaseException:
            if self.token_budget is not None and prepared.reservation is not None:
                await self.token_budget.cancel(current_principal.get(), prepared.reservation)
                prepared.reservation = None
            raise

    async def _reserve(self, prepared: PreparedGeneration) -> None:
        """Under a token limit, count the most tokens the generation may use before it runs; ``max_tokens`` is
        lowered to what the key has left (RateLimitedError when not even the prompt and one token fit). The
        prompt is its counted tokens, or its length in bytes over 4 where the binding cannot count."""
        max_tokens = prepared.parameters.get("max_tokens")
        if self.token_budget is None or max_tokens is None:
            return
        prompt = prepared.prompt_tokens
        if prompt is None:
            prompt = -(-len(prepared.conversation.prompt.encode()) // 4)
        reservation = await self.token_budget.reserve(current_principal.get(), prompt, int(max_tokens))
        if reservation is not None:
            prepared.reservation = reservation
            prepared.parameters["max_tokens"] = min(int(max_tokens), reservation.granted - prompt)

    async def run(self, prepared: PreparedGeneration) -> list[OutputData]:
        record = self._record(prepared, streamed=False)
        try:
            outputs = await self._run(prepared)
        except BaseException as exc:
            record.error = type(exc).__name__
            record.reservation = prepared.reservation
            await notify(self.observers, record)
            raise
        record.output_seen()
        record.finish(outputs, None, prepared.prompt_tokens)
        record.reservation = prepared.reservation
        await notify(self.observers, record)
        return outputs

    async def _run(self, prepared: PreparedGeneration) -> list[OutputData]:
        if prepared.workflow_call is not None:
            outputs = normalize_outputs(await collect_workflow(prepared.workflow_call), prepared.model_name)
            return await self.deliver(prepared, outputs)
        slot = await self.admit(prepared)
        try:
            with slot.held() if slot else contextlib.nullcontext(), self._span(prepared):
                result = await prepared.binding.generate(
                    prepared.conversation.prompt,
                    dict(prepared.parameters),
                    prepared.request_info,
                    prepared.conversation.multimodal or None,
                )
        finally:
            if slot:
                slot.release()
        return await self.deliver(prepared, normalize_outputs(result, prepared.model_name))

    def _span(self, prepared: PreparedGeneration) -> contextlib.AbstractContextManager[Any]:
        return span(
            "lollms.binding.generate",
            binding=prepared.binding_name,
            model=prepared.model_name,
            task=prepared.generation_type,
            request_id=prepared.request_id,
        )

    def _record(self, prepared: PreparedGeneration, streamed: bool) -> GenerationRecord:
        record = GenerationRecord(prepared.binding_name, prepared.model_name, prepared.generation_type, streamed)
        record.reservation = prepared.reservation  # a stream was admitted before it starts
        return record

    def _source(self, prepared: PreparedGeneration) -> AsyncIterator[dict[str, Any]]:
        if prepared.workflow_call is not None:
            return stream_workflow(prepared.workflow_call)
        return prepared.binding.generate_stream(
            prepared.conversation.prompt,
            dict(prepared.parameters),
            prepared.request_info,
            prepared.conversation.multimodal or None,
        )

    async def stream(self, prepared: PreparedGeneration, slot: ResourceSlot | None) -> AsyncIterator[GenerationEvent]:
        """Typed events: text deltas (thoughts split out) and side events as they come, then ``Completed`` with
        every output and the usage."""
        record = self._record(prepared, streamed=True)
        self.active_streams += 1
        try:
            async for event in self._stream(prepared, slot, record):
                yield event
        except BaseException as exc:
            record.error = type(exc).__name__
            raise
        finally:
            self.active_streams -= 1
            await notify(self.observers, record)

    async def _stream(
        self, prepared: PreparedGeneration, slot: ResourceSlot | None, record: GenerationRecord
    ) -> AsyncIterator[GenerationEvent]:
        accumulator = OutputAccumulator()
        try:
            with slot.held() if slot else contextlib.nullcontext(), self._span(prepared):
                async for item in self._source(prepared):
                    event = event_of(item)
                    delta = accumulator.add(event)
                    if delta is not None:
                        record.output_seen()
                        yield delta
                    elif isinstance(event, (SideEvent, MediaDelta)):
                        yield event
        finally:
            if slot:
                slot.release()
        delta = accumulator.flush()
        if delta is not None:
            record.output_seen()
            yield delta
        outputs = await self.deliver(
            prepared, normalize_outputs(accumulator.outputs(text_when_empty=True), prepared.model_name)
        )
        record.output_seen()
        metadata = {"model": prepared.model_name, **accumulator.metadata}
        record.finish(outputs, metadata, prepared.prompt_tokens)
        yield Completed(outputs, metadata)
