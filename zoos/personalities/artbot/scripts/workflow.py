"""artbot: discuss the idea with the text binding, then ask the default TTI binding for an image."""

from __future__ import annotations

from typing import Any

from lollms_server.core.errors import LollmsError


async def run_workflow(prompt: str, params: dict[str, Any], context: dict[str, Any]) -> list[dict[str, Any]]:
    generate_text = context["generate_text"]
    system = context["personality"].config.personality_conditioning
    discussion = await generate_text(
        f"In two or three sentences, describe how you would depict this idea as an image: {prompt}",
        system_prompt=system,
        **params,
    )
    image_prompt = await generate_text(
        "Write one line: a concise prompt for an image generator (subject, style, lighting, composition) "
        f"for this idea: {prompt}",
        system_prompt=system,
        **{**params, "max_tokens": 80},
    )
    image_prompt = image_prompt.strip().splitlines()[0] if image_prompt.strip() else prompt
    outputs: list[dict[str, Any]] = [
        {"type": "text", "data": discussion.strip(), "metadata": {"image_prompt": image_prompt}}
    ]
    tti_name = context["config"].defaults.get("tti_binding")
    if not tti_name:
        outputs.append(
            {
                "type": "info",
                "data": "No image was generated: no text-to-image binding is configured (defaults.tti_binding). "
                f"Image prompt: {image_prompt}",
            }
        )
        return outputs
    try:
        tti = await context["binding_manager"].get_binding(tti_name)
        result = await tti.generate(image_prompt, {}, {**context["request_info"], "messages": None})
    except LollmsError as exc:
        outputs.append({"type": "error", "data": f"The image binding '{tti_name}' could not make the image: {exc}"})
        return outputs
    images = result if isinstance(result, list) else [result]
    for image in images:
        if isinstance(image, dict):
            image.setdefault("metadata", {})
            image["metadata"] = {"prompt_used": image_prompt, **(image["metadata"] or {})}
            outputs.append(image)
    return outputs
