"""transformers_binding: causal language models from local folders, in process, through transformers.

The conversation goes through the model's chat template (a plain role-tagged layout when it has none); generation
runs in a worker thread inside a compute slot, one per loaded model at a time, and streams decoded text as it
comes; a client that leaves stops it at the next token (a stopping criterion)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import AsyncGenerator
from typing import Any

import anyio

from lollms_server.core.bindings import Binding, collect_outputs, token_usage
from lollms_server.core.compute_threads import run_compute
from lollms_server.core.errors import BadRequestError
from lollms_server.core.local_models import FolderModels, LoadedModels, torch_device
from lollms_server.core.thread_stream import Emit, stream_from_thread

# Our parameters -> generate() keyword arguments.
GENERATE_OPTIONS = {
    "temperature": "temperature",
    "top_k": "top_k",
    "top_p": "top_p",
    "repeat_penalty": "repetition_penalty",
}


class Stopped(Exception):
    """Raised inside generate() when nobody waits for the answer any more."""


class TransformersBinding(FolderModels, Binding):
    binding_type_name = "transformers_binding"
    input_modalities = ("text",)
    output_modalities = ("text",)
    tasks = ("ttt",)
    streams = True
    model_kind = "transformers"
    model_format = "safetensors"

    def __init__(self, config: dict[str, Any], resource_manager: Any) -> None:
        super().__init__(config, resource_manager)
        self._loaded: LoadedModels[tuple[Any, Any, str]] = LoadedModels()  # (model, tokenizer, device)

    def get_resource_requirements(self) -> dict[str, Any]:
        return {"gpu_required": True}

    async def get_model_info(self, model_name: str | None = None) -> dict[str, Any]:
        name = str(await self.resolve_model(model_name))

        def read() -> Any:
            from transformers import AutoConfig

            return AutoConfig.from_pretrained(self.folder.path(name), local_files_only=True)

        config = await anyio.to_thread.run_sync(read)
        return {
            "model_name": name,
            "model_type": "ttt",
            "context_size": getattr(config, "max_position_embeddings", None),
            "supports_streaming": True,
            "details": {"family": config.model_type, "vocab_size": getattr(config, "vocab_size", None)},
        }

    async def load_model(self, model_name: str) -> bool:
        await self._model(model_name)
        return True

    async def unload_model(self) -> bool:
        self._loaded.clear()
        return True

    async def _model(self, name: str) -> tuple[Any, Any, str]:
        async def load() -> tuple[Any, Any, str]:
            path = await anyio.to_thread.run_sync(self.folder.path, name)
            device = torch_device(str(self.config.get("device") or "auto"))
            dtype_setting = str(self.config.get("dtype") or "auto")

            def build() -> tuple[Any, Any, str]:
                import torch
                from transformers import AutoModelForCausalLM, AutoTokenizer

                if self.config.get("num_threads"):
                    torch.set_num_threads(int(self.config["num_threads"]))
                dtype = (
                    getattr(torch, dtype_setting)
                    if dtype_setting != "auto"
                    else (torch.float32 if device == "cpu" else torch.float16)
                )
                model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, local_files_only=True).to(device)
                return model.eval(), AutoTokenizer.from_pretrained(path, local_files_only=True), device

            async with self.resource_manager.acquire_gpu_resource(f"load {name} on {self.binding_instance_name}"):
                return await run_compute(build)

        return await self._loaded.get(name, load)

    # --- tokens ------------------------------------------------------------------------------------
    async def tokenize(
        self, text: str, add_bos: bool = False, add_eos: bool = False, model_name: str | None = None
    ) -> list[int]:
        _, tokenizer, _ = await self._model(str(await self.resolve_model(model_name)))
        ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
        return (
            ([tokenizer.bos_token_id] if add_bos and tokenizer.bos_token_id is not None else [])
            + ids
            + ([tokenizer.eos_token_id] if add_eos and tokenizer.eos_token_id is not None else [])
        )

    async def detokenize(self, tokens: list[int], model_name: str | None = None) -> str:
        _, tokenizer, _ = await self._model(str(await self.resolve_model(model_name)))
        invalid = [token for token in tokens if not 0 <= token < len(tokenizer)]
        if invalid:
            raise BadRequestError(f"token ids out of range for this model (0..{len(tokenizer) - 1}): {invalid[:10]}")
        return str(tokenizer.decode(tokens))

    @staticmethod
    def _prompt_ids(tokenizer: Any, prompt: str, request_info: dict[str, Any]) -> list[int]:
        if request_info.get("raw_prompt"):
            return list(tokenizer(prompt)["input_ids"])
        messages = [
            {"role": m["role"], "content": m.get("content") or ""}
            for m in request_info.get("messages") or [{"role": "user", "content": prompt}]
        ]
        if tokenizer.chat_template:
            encoded = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_dict=True)
            return list(encoded["input_ids"])
        text = "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant: "
        return list(tokenizer(text)["input_ids"])

    # --- generation --------------------------------------------------------------------------------
    async def generate(
        self,
        prompt: str,
        params: dict[str, Any],
        request_info: dict[str, Any],
        multimodal_data: list[Any] | None = None,
    ) -> list[dict[str, Any]]:
        return await collect_outputs(self.generate_stream(prompt, params, request_info, multimodal_data))

    async def generate_stream(
        self,
        prompt: str,
        params: dict[str, Any],
        request_info: dict[str, Any],
        multimodal_data: list[Any] | None = None,
    ) -> AsyncGenerator[dict[str, Any], None]:
        if multimodal_data:
            raise BadRequestError("transformers_binding takes text only")
        name = str(request_info.get("model_name") or self.default_model_name)
        model, tokenizer, device = await self._model(name)
        prompt_ids = await anyio.to_thread.run_sync(self._prompt_ids, tokenizer, prompt, request_info)
        context = getattr(model.config, "max_position_embeddings", None)
        wanted = int(params.get("max_tokens") or 256)
        if context and len(prompt_ids) >= context:
            raise BadRequestError(
                f"the prompt is {len(prompt_ids):,} tokens; model '{name}' has a context of {context:,} tokens"
            )
        generated = 0
        finish = "stop"

        def work(emit: Emit, stop: threading.Event) -> None:
            import torch
            from transformers import StoppingCriteria, StoppingCriteriaList, TextStreamer

            class Pieces(TextStreamer):
                def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
                    if text:
                        emit(text)

            class Leave(StoppingCriteria):
                def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
                    if stop.is_set():
                        raise Stopped
                    return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)

            options: dict[str, Any] = {
                "max_new_tokens": min(wanted, (context - len(prompt_ids)) if context else wanted),
                "streamer": Pieces(tokenizer, skip_prompt=True, skip_special_tokens=True),
                "stopping_criteria": StoppingCriteriaList([Leave()]),
                "pad_token_id": tokenizer.pad_token_id
                if tokenizer.pad_token_id is not None
                else tokenizer.eos_token_id,
            }
            temperature = params.get("temperature")
            options["do_sample"] = temperature is None or float(temperature) > 0
            for ours, theirs in GENERATE_OPTIONS.items():
                if params.get(ours) is not None and (ours != "temperature" or options["do_sample"]):
                    options[theirs] = params[ours]
            if params.get("stop"):
                options["stop_strings"], options["tokenizer"] = list(params["stop"]), tokenizer
            if params.get("seed") is not None and int(params["seed"]) >= 0:
                torch.manual_seed(int(params["seed"]))
            input_ids = torch.tensor([prompt_ids], device=device)
            with torch.inference_mode():
                output = model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), **options)
            emit({"generated": int(output.shape[1] - len(prompt_ids)), "limit": options["max_new_tokens"]})

        async with self.resource_manager.acquire_gpu_resource(f"generate on {self.binding_instance_name}"):
            async with self._loaded.lock(name):
                async with contextlib.aclosing(stream_from_thread(work)) as pieces:
                    async for piece in pieces:
                        if isinstance(piece, dict):
                            generated = piece["generated"]
                            finish = "length" if generated >= piece["limit"] else "stop"
                        else:
                            yield {"type": "chunk", "content": piece}
        usage = token_usage(len(prompt_ids), generated)
        yield {"type": "final", "content": None, "metadata": {"model": name, "usage": usage, "finish_reason": finish}}
