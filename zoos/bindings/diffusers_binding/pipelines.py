"""The torch side: loading a saved pipeline on a device, its task variants, one denoising call, unloading.

Everything here blocks: the binding runs it in worker threads.
"""

from __future__ import annotations

import gc
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lollms_server.core.errors import BadRequestError
from lollms_server.core.local_models import torch_device

from .images import ImageInputs
from .models import DiffusersModel
from .parameters import ImageRequest
from .video import VIDEO_PIPELINES, VIDEO_TASK

SCHEDULERS = {
    "ddim": "DDIMScheduler",
    "euler": "EulerDiscreteScheduler",
    "euler_ancestral": "EulerAncestralDiscreteScheduler",
    "dpm++": "DPMSolverMultistepScheduler",
    "pndm": "PNDMScheduler",
    "unipc": "UniPCMultistepScheduler",
}
AUTO_PIPELINES = {
    "text_to_image": "AutoPipelineForText2Image",
    "image_to_image": "AutoPipelineForImage2Image",
    "inpainting": "AutoPipelineForInpainting",
}


@dataclass(frozen=True)
class LoadSettings:
    device: str  # auto, cpu, cuda, cuda:N, mps
    dtype: str  # auto, float16, bfloat16, float32
    cpu_offload: bool
    attention_slicing: bool
    num_threads: int | None


def pick_dtype(setting: str, device: str) -> Any:
    import torch

    if setting == "auto":
        return torch.float32 if device == "cpu" else torch.float16
    return getattr(torch, setting)


@dataclass(eq=False)
class LoadedPipeline:
    """One loaded model: its text-to-image pipeline and the variants made from it (sharing its weights)."""

    model: DiffusersModel
    device: str
    dtype: str
    pipelines: dict[str, Any]
    scheduler_config: Any
    steps_run: int = 0
    images_made: int = 0

    @property
    def makes_video(self) -> bool:
        return VIDEO_TASK in self.pipelines

    @property
    def default_size(self) -> tuple[int, int]:
        base = self.pipelines[VIDEO_TASK if self.makes_video else "text_to_image"]
        sample = base.unet.config.sample_size
        side = int(sample if isinstance(sample, int) else sample[0]) * int(base.vae_scale_factor)
        return side, side

    def pipeline_for(self, task: str) -> Any:
        """The pipeline of ``task``, made from the loaded one without reloading (diffusers' ``from_pipe``)."""
        if self.makes_video and task != VIDEO_TASK:
            raise BadRequestError(f"model '{self.model.name}' makes videos (generation_type 'ttv'), not images")
        if task not in self.pipelines:
            import diffusers

            try:
                pipeline = getattr(diffusers, AUTO_PIPELINES[task]).from_pipe(self.pipelines["text_to_image"])
            except (ValueError, KeyError, TypeError) as exc:
                raise BadRequestError(f"model '{self.model.name}' cannot do {task.replace('_', '-')}: {exc}") from None
            pipeline.set_progress_bar_config(disable=True)
            self.pipelines[task] = pipeline
        return self.pipelines[task]

    def release(self) -> None:
        """Drop every reference to the weights and give the memory back."""
        self.pipelines.clear()
        gc.collect()
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.empty_cache()


def pipeline_class(model: DiffusersModel) -> str | None:
    """The pipeline class a saved model names in its model_index.json (None for a Hub id or no index)."""
    index = model.location if not model.is_hub else None
    try:
        return str(json.loads((Path(index) / "model_index.json").read_text(encoding="utf-8")).get("_class_name"))
    except (OSError, ValueError, TypeError):
        return None


def load(model: DiffusersModel, settings: LoadSettings) -> LoadedPipeline:
    import diffusers
    import torch
    from packaging.version import Version

    if settings.num_threads:
        torch.set_num_threads(settings.num_threads)
    device = torch_device(settings.device)
    dtype = pick_dtype(settings.dtype, device)
    # diffusers 0.42 renamed torch_dtype to dtype (the old name warns).
    dtype_key = "dtype" if Version(diffusers.__version__) >= Version("0.42") else "torch_dtype"
    video = pipeline_class(model) in VIDEO_PIPELINES
    loader = diffusers.DiffusionPipeline if video else diffusers.AutoPipelineForText2Image
    pipeline = loader.from_pretrained(model.location, local_files_only=not model.is_hub, **{dtype_key: dtype})
    pipeline.set_progress_bar_config(disable=True)
    if settings.attention_slicing:
        pipeline.enable_attention_slicing()
    if settings.cpu_offload and device.startswith("cuda"):
        pipeline.enable_model_cpu_offload(device=device)
    else:
        pipeline.to(device)
    return LoadedPipeline(
        model=model,
        device=device,
        dtype=str(dtype).removeprefix("torch."),
        pipelines={VIDEO_TASK if video else "text_to_image": pipeline},
        scheduler_config=pipeline.scheduler.config,
    )


def fresh_scheduler(loaded: LoadedPipeline, name: str) -> Any:
    """A new scheduler for one request (schedulers keep per-run state): the model's own or the one named."""
    import diffusers

    base = loaded.pipelines[VIDEO_TASK if loaded.makes_video else "text_to_image"].scheduler
    cls = type(base) if name == "default" else getattr(diffusers, SCHEDULERS[name])
    return cls.from_config(loaded.scheduler_config)


def denoise(
    loaded: LoadedPipeline,
    prompt: str,
    params: ImageRequest,
    inputs: ImageInputs,
    seeds: list[int],
    size: tuple[int, int],
    on_step_end: Any,
) -> list[Any]:
    """The images of one request (PIL); image i is drawn from its own generator seeded with ``seeds[i]``."""
    import torch

    pipeline = loaded.pipeline_for(inputs.task)
    pipeline.scheduler = fresh_scheduler(loaded, params.scheduler)
    arguments: dict[str, Any] = {
        "prompt": prompt,
        "negative_prompt": params.negative_prompt,
        "num_inference_steps": params.num_inference_steps,
        "guidance_scale": params.guidance_scale,
        "num_images_per_prompt": len(seeds),
        "generator": [torch.Generator(device="cpu").manual_seed(seed) for seed in seeds],
        "callback_on_step_end": on_step_end,
        "output_type": "pil",
    }
    width, height = size
    if inputs.task == "text_to_image":
        arguments.update(width=width, height=height)
    elif inputs.task == "image_to_image":
        arguments.update(image=inputs.image, strength=params.strength)
    else:
        arguments.update(
            image=inputs.image, mask_image=inputs.mask, strength=params.strength, width=width, height=height
        )
    with torch.inference_mode():
        images = list(pipeline(**arguments).images)
    loaded.images_made += len(images)
    return images
