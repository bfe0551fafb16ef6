"""Generation tasks: one registry entry per ``generation_type`` — the modality it outputs, the input it needs,
and the parameters it takes, validated with limits from the config. Adding a modality is adding a task (and
bindings), not editing the pipeline."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from lollms_server.core.audio_parameters import (
    AudioToAudioParameters,
    MusicParameters,
    SpeechParameters,
    TranscriptionParameters,
    audio_to_audio_parameters,
    music_parameters,
    speech_parameters,
    transcription_parameters,
)
from lollms_server.core.errors import BadRequestError
from lollms_server.core.image_parameters import ImageParameters
from lollms_server.core.limits import InputLimits
from lollms_server.core.parameters import GenerationParameters, validate_parameters
from lollms_server.core.video_parameters import VideoParameters, video_parameters


def validate_image_parameters(parameters: Mapping[str, Any] | None, limits: InputLimits) -> dict[str, Any]:
    """Image parameters checked against their model and the server's caps (``limits``)."""
    checked = ImageParameters.checked(parameters)
    limits.image_caps.check(checked)
    return checked.model_dump(exclude_none=True)


def validate_speech_parameters(parameters: Mapping[str, Any] | None, limits: InputLimits) -> dict[str, Any]:
    return speech_parameters(parameters)


def validate_transcription_parameters(parameters: Mapping[str, Any] | None, limits: InputLimits) -> dict[str, Any]:
    return transcription_parameters(parameters)


def validate_audio_to_audio_parameters(parameters: Mapping[str, Any] | None, limits: InputLimits) -> dict[str, Any]:
    return audio_to_audio_parameters(parameters)


def validate_music_parameters(parameters: Mapping[str, Any] | None, limits: InputLimits) -> dict[str, Any]:
    return music_parameters(parameters)


def validate_video_parameters(parameters: Mapping[str, Any] | None, limits: InputLimits) -> dict[str, Any]:
    values = video_parameters(parameters)
    if values.get("width") and values.get("height"):
        limits.image_caps.check_pixels("each frame", values["width"], values["height"])
    return values


def validate_text_parameters(parameters: Mapping[str, Any] | None, limits: InputLimits) -> dict[str, Any]:
    return validate_parameters(parameters)


# The modality an input role carries, which a binding must accept to run a task needing it.
ROLE_MODALITIES = {"input_image": "image", "mask_image": "image", "input_audio": "audio"}


@dataclass(frozen=True)
class GenerationTask:
    """One ``generation_type``."""

    name: str
    output: str  # the modality produced; a binding must list it among its output modalities
    description: str
    needs_prompt: bool  # a text item with role user_prompt
    required_roles: tuple[str, ...]  # other input roles it cannot do without
    validate: Callable[[Mapping[str, Any] | None, InputLimits], dict[str, Any]]
    parameters: type[BaseModel]  # what ``validate`` checks first; its JSON Schema is the task's public description
    default_max_tokens: bool = False  # text outputs get defaults.default_max_output_tokens
    optional_roles: tuple[str, ...] = ()  # other input roles it uses when given

    @property
    def needed_modalities(self) -> set[str]:
        """The input modalities a binding must accept to run this task."""
        needed = {ROLE_MODALITIES[role] for role in self.required_roles if role in ROLE_MODALITIES}
        return needed | {"text"} if self.needs_prompt else needed

    def check_inputs(self, prompt: str, roles: set[str]) -> None:
        # A text answer may be about an image alone (an OpenAI message can be just an image part).
        if self.needs_prompt and not prompt and not (self.output == "text" and roles):
            raise BadRequestError(f"'{self.name}' needs a text item with role 'user_prompt' in input_data")
        missing = [role for role in self.required_roles if role not in roles]
        if missing:
            raise BadRequestError(f"'{self.name}' ({self.description}) needs input_data items with role {missing[0]}")


# Tasks whose modality has no binding yet take the text parameters (passed on to the binding as they are).
# fmt: off
TASKS: dict[str, GenerationTask] = {
    task.name: task
    for task in (
        GenerationTask(
            "ttt", "text", "text generation", True, (), validate_text_parameters, GenerationParameters,
            default_max_tokens=True,
        ),
        GenerationTask("tti", "image", "text to image", True, (), validate_image_parameters, ImageParameters),
        GenerationTask(
            "i2i", "image", "image to image, inpainting with a mask_image", False, ("input_image",),
            validate_image_parameters, ImageParameters, optional_roles=("mask_image",),
        ),
        GenerationTask("ttv", "video", "text to video", True, (), validate_video_parameters, VideoParameters),
        GenerationTask("ttm", "audio", "text to music", True, (), validate_music_parameters, MusicParameters),
        GenerationTask("tts", "audio", "text to speech", True, (), validate_speech_parameters, SpeechParameters),
        GenerationTask(
            "stt", "text", "speech to text", False, ("input_audio",), validate_transcription_parameters,
            TranscriptionParameters,
        ),
        GenerationTask(
            "audio2audio", "audio", "audio to audio", False, ("input_audio",), validate_audio_to_audio_parameters,
            AudioToAudioParameters,
        ),
    )
}
# fmt: on


def tasks_for_modalities(inputs: Iterable[str], outputs: Iterable[str]) -> list[str]:
    """The tasks whose output and needed inputs these modalities cover: what a binding may declare, and what one
    that declares no tasks is taken to run."""
    accepted, produced = set(inputs), set(outputs)
    return [task.name for task in TASKS.values() if task.output in produced and task.needed_modalities <= accepted]


def task_of(name: str) -> GenerationTask:
    task = TASKS.get(name)
    if task is None:
        raise BadRequestError(f"unknown generation_type '{name}'; use one of {', '.join(TASKS)}")
    return task
