"""The Binding contract (spec section 9, "Adding Custom Bindings").

A binding type is a folder with ``binding_card.yaml`` and an ``__init__.py`` defining a subclass of
``Binding`` whose ``binding_type_name`` equals the card's ``type_name``. Discovery and instances live in
``lollms_server.core.binding_manager``.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from lollms_server.core.errors import CapabilityError
from lollms_server.core.events import OutputAccumulator, event_of
from lollms_server.core.limits import AudioBound, InputLimits
from lollms_server.core.model_residency import ModelKey
from lollms_server.core.resource_manager import ResourceManager
from lollms_server.core.tasks import tasks_for_modalities

if TYPE_CHECKING:
    from lollms_server.core.domain import InputData

GenerateResult = str | dict[str, Any] | list[dict[str, Any]]


def token_usage(prompt_tokens: int | None, completion_tokens: int | None) -> dict[str, int | None]:
    """The ``usage`` metadata of an answer; the total only when both parts are known."""
    total = prompt_tokens + completion_tokens if prompt_tokens is not None and completion_tokens is not None else None
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": total}


async def collect_outputs(chunks: AsyncIterator[dict[str, Any]]) -> list[dict[str, Any]]:
    """A binding's own stream of chunk dicts gathered into its outputs (for its ``generate``): the text (even
    when empty), then what else came (tool calls, info and error events)."""
    accumulator = OutputAccumulator(split_think=False)  # the pipeline splits <think> blocks itself
    async for chunk in chunks:
        accumulator.add(event_of(chunk))
    return accumulator.outputs(text_when_empty=True)


async def final_outputs(chunks: AsyncIterator[dict[str, Any]]) -> list[dict[str, Any]]:
    """The outputs of a binding's own stream's ``final`` chunk (for a ``generate`` whose stream reports progress
    that a complete answer does not keep); the stream is closed at once if it ends early."""
    outputs: list[dict[str, Any]] = []
    async with contextlib.aclosing(chunks) as events:  # type: ignore[type-var]
        async for chunk in events:
            if chunk.get("type") == "final" and isinstance(chunk.get("content"), list):
                outputs = list(chunk["content"])
    return outputs


class Binding(ABC):
    """Base class of every generation backend."""

    binding_type_name: ClassVar[str] = ""
    # Capabilities as data: a binding that declares them gets the spec's get_supported_*_modalities() for free
    # and is checked against its card at discovery; one written against the spec overrides those methods.
    input_modalities: ClassVar[tuple[str, ...] | None] = None
    output_modalities: ClassVar[tuple[str, ...] | None] = None
    # The generation types it runs (its card's supported_tasks); None: every task its modalities fit. Speech and
    # music both turn text into audio: only this tells a text-to-speech binding from a music one.
    tasks: ClassVar[tuple[str, ...] | None] = None
    streams: ClassVar[bool | None] = None  # overrides generate_stream with a real stream
    uses_other_instances: ClassVar[bool] = False  # health depends on other instances: checked after them
    # The address of the server a remote binding relays to (its base_url or host), or None: the BindingManager
    # refuses an instance whose backend is this server itself (core.relay).
    backend_url: str | None = None
    # Set by the BindingManager: the server's models folder (``paths.models_folder``), and how to reach the other
    # instances by name (what a binding over other bindings, such as the router, calls).
    models_folder: Path | None = None
    instance_of: Callable[[str], Awaitable[Binding]] | None = None
    # Set by the BindingManager too: the server's ``limits`` (what requests may send), which the pipeline has
    # checked from the inputs' headers; a binding that decodes media bounds its decoding by them.
    input_limits: InputLimits = InputLimits()

    def __init__(self, config: dict[str, Any], resource_manager: ResourceManager) -> None:
        self.config = config
        self.resource_manager = resource_manager
        self.binding_instance_name: str = config.get("binding_instance_name") or self.binding_type_name
        self.default_model_name: str | None = config.get("default_model") or None
        self.model_name: str | None = None

    # --- required -------------------------------------------------------------------------------
    @abstractmethod
    async def list_available_models(self) -> list[dict[str, Any]]:
        """Models this instance can use (local files, models offered by its server...)."""

    def get_supported_input_modalities(self) -> list[str]:
        """Input data types accepted, e.g. ['text', 'image'] (the class's ``input_modalities``)."""
        return list(self.input_modalities or ())

    def get_supported_output_modalities(self) -> list[str]:
        """Output data types produced, e.g. ['text'] (the class's ``output_modalities``)."""
        return list(self.output_modalities or ())

    def get_supported_tasks(self) -> list[str]:
        """Generation types it runs, e.g. ['tts'] (the class's ``tasks``, else every task its modalities fit):
        the one rule of which binding can run a task, for requests and listings alike."""
        if self.tasks is not None:
            return list(self.tasks)
        return tasks_for_modalities(self.get_supported_input_modalities(), self.get_supported_output_modalities())

    @abstractmethod
    async def load_model(self, model_name: str) -> bool:
        """Make ``model_name`` the active model."""

    @abstractmethod
    async def unload_model(self) -> bool:
        """Release the active model."""

    @abstractmethod
    async def generate(
        self,
        prompt: str,
        params: dict[str, Any],
        request_info: dict[str, Any],
        multimodal_data: list[InputData] | None = None,
    ) -> GenerateResult:
        """Generate a complete result: a string, an OutputData-like dict, or a list of them."""

    @abstractmethod
    async def get_model_info(self, model_name: str | None = None) -> dict[str, Any]:
        """Context size, capabilities and details of a model (the active or default one if None)."""

    # --- optional -------------------------------------------------------------------------------
    async def generate_stream(
        self,
        prompt: str,
        params: dict[str, Any],
        request_info: dict[str, Any],
        multimodal_data: list[InputData] | None = None,
    ) -> AsyncGenerator[dict[str, Any], None]:
        """Stream StreamChunk-like dicts. Without an override, the complete result arrives as one final chunk."""
        result = await self.generate(prompt, params, request_info, multimodal_data)
        outputs = result if isinstance(result, list) else [result]
        yield {
            "type": "final",
            "content": [item if isinstance(item, dict) else {"type": "text", "data": item} for item in outputs],
        }

    async def tokenize(self, text: str, add_bos: bool = False, add_eos: bool = False) -> list[int]:
        raise CapabilityError(f"binding type '{self.binding_type_name}' cannot tokenize")

    async def detokenize(self, tokens: list[int]) -> str:
        raise CapabilityError(f"binding type '{self.binding_type_name}' cannot detokenize")

    async def embed(self, texts: list[str], model_name: str | None = None, **options: Any) -> dict[str, Any]:
        """``{"embeddings": [[float, ...], ...], "prompt_tokens": int | None}``, one vector per text."""
        raise CapabilityError(f"binding type '{self.binding_type_name}' cannot compute embeddings")

    def supports_structured_output(self) -> bool:
        """Whether ``params["response_format"]`` (JSON object / JSON schema) is honoured."""
        return False

    async def health_check(self) -> tuple[bool, str]:
        """(healthy, message). Remote bindings should check that their backend answers."""
        return True, "ok"

    def settings_problem(self) -> str | None:
        """What the instance's own settings make unusable, found on this machine without asking any backend (a
        default model that is not there, a package it needs); None when nothing. Checked before ``health_check``
        (the instance is unavailable until it is fixed) and by ``lollms-server check-config``. Blocking: it runs
        in a worker thread."""
        return None

    def other_instances(self) -> tuple[str, ...]:
        """The instances this one sends requests to (a router's backends): the BindingManager refuses instances that
        lead back to themselves."""
        return ()

    def get_resource_requirements(self) -> dict[str, Any]:
        """Whether generation needs a compute slot from the resource manager."""
        return {"gpu_required": False}

    async def count_prompt_tokens(
        self, prompt: str, params: dict[str, Any], request_info: dict[str, Any]
    ) -> int | None:
        """The prompt's token count as the model will see it (None when unknown); BadRequestError when it
        cannot fit the model's context. Runs before the request waits for a compute slot, so an over-long
        prompt is refused at once with 400 rather than failing inside generation."""
        return None

    def residency_key(self, model_name: str | None) -> ModelKey | None:
        """The key under which ``model_name`` is loaded in ``resource_manager.models`` (None: nothing loads
        here); lets the admission queue serve requests for an already loaded model first."""
        return None

    def default_model_for(self, task: str) -> str | None:
        """The model a ``task`` request that names none should use, when it is not the instance default (an
        image model for ``tti`` on a binding whose default model chats); None: ``resolve_model`` decides."""
        return None

    async def resolve_model(self, model_name: str | None) -> str | None:
        """The model a request will use: the one named, else the instance default. NotFoundError if unknown.

        Must not switch the loaded model: that happens inside ``generate`` under the binding's own lock.
        """
        return model_name or self.model_name or self.default_model_name

    def model_supports_input(self, model_name: str | None, data_type: str, role: str) -> bool:
        """Whether ``model_name`` (as resolved) can use an input item; by default ``supports_input_role``."""
        return self.supports_input_role(data_type, role)

    def audio_bound(self) -> AudioBound:
        """The longest audio this instance decodes: the server's ``limits.max_audio_seconds``, or the instance's
        own ``max_audio_seconds`` setting where it is lower."""
        own = self.config.get("max_audio_seconds")
        setting = f"max_audio_seconds of binding '{self.binding_instance_name}'"
        return (
            self.input_limits.audio_bound.tighter(AudioBound(float(own), setting))
            if own
            else self.input_limits.audio_bound
        )

    def supports_input_role(self, data_type: str, role: str) -> bool:
        """Whether an input item of this type and role can be used; by default any accepted type."""
        return data_type in self.get_supported_input_modalities()
