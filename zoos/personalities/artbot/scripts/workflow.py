"""artbot: discuss the idea with the text binding, then ask the default text-to-image binding for an image:
a text answer and the image in one response (streaming or not). Image settings go in ``parameters.image``."""

from __future__ import annotations

from typing import Any

from lollms_server.core.errors import LollmsError


async def run_workflow(prompt: str, params: dict[str, Any], context: dict[str, Any]) -> list[dict[str, Any]]:
    generate_text = context["generate_text"]
    system = context["personality"].config.personality_conditioning
    text_params = {key: value for key, value in params.items() if key != "image"}
    discussion = await generate_text(
        f"In two or three sentences, describe how you would depict this idea as an image: {prompt}",
        system_prompt=system,
        **text_params,
    )
    image_prompt = await generate_text(
        "Write one line: a concise prompt for an image generator (subject, style, lighting, composition) "
        f"for this idea: {prompt}",
        system_prompt=system,
        **{**text_params, "max_tokens": 80},
    )
    image_prompt = image_prompt.strip().splitlines()[0] if image_prompt.strip() else prompt
    outputs: list[dict[str, Any]] = [
        {"type": "text", "data": discussion.strip(), "metadata": {"image_prompt": image_prompt}}
    ]
    tti_name = context["config"].default_binding("tti")
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
        # A request of its own: the image parameters are checked, the task's default binding is used and the
        # compute slot is taken, exactly as for /generate with generation_type "tti".
        images = await context["generate"]("tti", prompt=image_prompt, parameters=image_parameters(params))
    except LollmsError as exc:
        outputs.append({"type": "error", "data": f"The image binding '{tti_name}' could not make the image: {exc}"})
        return outputs
    for image in images:
        image["metadata"] = {"prompt_used": image_prompt, **(image.get("metadata") or {})}
        outputs.append(image)
    return outputs


def image_parameters(params: dict[str, Any]) -> dict[str, Any]:
    """The request's image settings (``image_size``, ``seed``...), passed as ``params["image"]``."""
    image = params.get("image")
    return dict(image) if isinstance(image, dict) else {}
