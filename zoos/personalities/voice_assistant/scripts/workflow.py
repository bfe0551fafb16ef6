"""voice_assistant: speech to text, text to text, text to speech — each step a request of its own through the
pipeline (context["generate"]): its task's default binding, its parameter checks and its compute slot.

Voice settings go in ``parameters.voice`` ({"voice", "speed", "audio_format"}); the text settings are the rest."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

SPEECH_SETTINGS = ("voice", "speed", "audio_format", "sample_rate")


async def run_workflow(prompt: str, params: dict[str, Any], context: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
    spoken = [item for item in context["input_data"] if item.type == "audio" and item.role == "input_audio"]
    question = prompt
    if spoken:
        heard = await context["generate"]("stt", input_data=spoken[:1])
        question = next((output["data"] for output in heard if output["type"] == "text"), "").strip()
        yield {"type": "info", "content": f"heard: {question}", "metadata": {"transcript": question}}
    if not question:
        yield {"type": "error", "content": "nothing to answer: send a spoken question (input_audio) or a user_prompt"}
        return
    voice = params.get("voice") if isinstance(params.get("voice"), dict) else {}
    text_params = {key: value for key, value in params.items() if key != "voice"}
    answer = (
        await context["generate_text"](question, system_prompt=context["request_info"]["system_prompt"], **text_params)
    ).strip()
    yield {"type": "chunk", "content": answer}
    speech = await context["generate"](
        "tts", prompt=answer, parameters={key: voice[key] for key in SPEECH_SETTINGS if key in voice}
    )
    for output in speech:
        if output["type"] == "audio":
            yield {"type": "chunk", "content": output}
