"""llamacpp_binding: GGUF models in-process with llama-cpp-python (blocking work in worker threads)."""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import math
import threading
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

import anyio

from lollms_server.core.bindings import Binding, collect_text, token_usage
from lollms_server.core.errors import BadRequestError

from .models import describe_metadata, list_models, resolve_model
from .runner import chat_pieces, completion_pieces, stream_pieces

logger = logging.getLogger(__name__)

# Request parameters passed to create_chat_completion as they are (beyond the normalized vocabulary).
PASSTHROUGH_OPTIONS = (
    "min_p",
    "typical_p",
    "presence_penalty",
    "frequency_penalty",
    "tfs_z",
    "mirostat_mode",
    "mirostat_tau",
    "mirostat_eta",
)
# llama-cpp-python silences model loading by dup2()-ing the process's stdout/stderr to /dev/null; two
# loads in parallel threads can restore the wrong descriptor and leave the process mute. One at a time.
_LOADING = threading.Lock()
SAMPLING_OPTIONS = ("max_tokens", "temperature", "top_k", "top_p", "repeat_penalty", "stop", "seed")


def _sentence_vector(embedding: Any) -> list[float]:
    """One L2-normalized vector: token-level output (models without pooling) is mean-pooled first."""
    rows = embedding if embedding and isinstance(embedding[0], list) else [embedding]
    width = len(rows[0])
    mean = [sum(row[i] for row in rows) / len(rows) for i in range(width)]
    norm = math.sqrt(sum(value * value for value in mean)) or 1.0
    return [value / norm for value in mean]


def _construct(llama_class: Any, settings: dict[str, Any]) -> Any:
    with _LOADING:
        return llama_class(**settings)


class LlamaCppBinding(Binding):
    binding_type_name = "llamacpp_binding"

    def __init__(self, config: dict[str, Any], resource_manager: Any) -> None:
        super().__init__(config, resource_manager)
        self._llm: Any = None
        self._loaded_path: Path | None = None
        # One operation on the loaded model at a time: llama.cpp contexts are not thread-safe, and a
        # model switch must wait for the generation using the current model.
        self._model_lock = asyncio.Lock()
        self._vocabularies: dict[Path, Any] = {}
        self._vocabulary_lock = threading.Lock()
        self._embedders: dict[Path, Any] = {}
        self._embedding_lock = threading.Lock()

    # --- capabilities ------------------------------------------------------------------------------
    def get_supported_input_modalities(self) -> list[str]:
        return ["text"]

    def get_supported_output_modalities(self) -> list[str]:
        return ["text", "embedding"]

    def get_resource_requirements(self) -> dict[str, Any]:
        return {"gpu_required": True}  # local compute: admitted by the resource manager, GPU or not

    def supports_input_role(self, data_type: str, role: str) -> bool:
        return data_type == "text" and role in ("user_prompt", "assistant_reply", "system_context")

    async def health_check(self) -> tuple[bool, str]:
        if importlib.util.find_spec("llama_cpp") is None:
            return False, "llama-cpp-python is not installed"
        try:
            resolve_model(self.default_model_name, self.models_folder)
        except Exception as exc:
            return False, f"default model unavailable: {exc}"
        return True, "ok"

    # --- models --------------------------------------------------------------------------------------
    async def resolve_model(self, model_name: str | None) -> str | None:
        name, _ = resolve_model(model_name or self.default_model_name, self.models_folder)
        return name

    async def list_available_models(self) -> list[dict[str, Any]]:
        models = await anyio.to_thread.run_sync(list_models, self.models_folder)
        for model in models:
            model["context_size"] = self.config.get("n_ctx") or None
        return models

    async def load_model(self, model_name: str) -> bool:
        _, path = resolve_model(model_name, self.models_folder)
        async with self._model_lock:
            await self._ensure_loaded(path, model_name)
        return True

    async def unload_model(self) -> bool:
        async with self._model_lock:
            self._release_model()
        return True

    def _release_model(self) -> None:
        if self._llm is not None:
            self._llm.close()
        self._llm, self._loaded_path, self.model_name = None, None, None

    async def _ensure_loaded(self, path: Path, name: str) -> Any:
        """The loaded llama for ``path``, loading it if needed. The caller holds the model lock."""
        if self._loaded_path == path and self._llm is not None:
            return self._llm
        self._release_model()
        from llama_cpp import Llama

        settings = {
            "model_path": str(path),
            "n_ctx": int(self.config.get("n_ctx", 4096)),
            "n_threads": self.config.get("n_threads"),
            "n_gpu_layers": int(self.config.get("n_gpu_layers", 0)),
            "n_batch": int(self.config.get("n_batch", 512)),
            "chat_format": self.config.get("chat_format"),
            "verbose": False,
        }
        async with self.resource_manager.acquire_gpu_resource(f"load {name} on {self.binding_instance_name}"):
            self._llm = await anyio.to_thread.run_sync(lambda: _construct(Llama, settings))
        self._loaded_path, self.model_name = path, name
        logger.info("Loaded %s on %s", path.name, self.binding_instance_name)
        return self._llm

    async def get_model_info(self, model_name: str | None = None) -> dict[str, Any]:
        name, path = resolve_model(model_name or self.default_model_name, self.models_folder)
        vocabulary = await self._vocabulary(path)
        described = describe_metadata(dict(vocabulary.metadata))
        configured = int(self.config.get("n_ctx", 0)) or None
        training = described["training_context_size"]
        return {
            "model_name": name,
            "model_type": "ttt",
            "context_size": configured or training,
            "max_output_tokens": None,
            "supports_vision": False,
            "supports_audio": False,
            "supports_streaming": True,
            "details": {
                "format": "gguf",
                **described,
                "configured_context_size": configured,
                "file_size": path.stat().st_size,
                "loaded": self._loaded_path == path,
            },
        }

    # --- tokenizer -----------------------------------------------------------------------------------
    async def _vocabulary(self, path: Path) -> Any:
        """A vocab-only llama for ``path`` (cheap, independent of the generation context)."""
        if path not in self._vocabularies:
            from llama_cpp import Llama

            settings = {"model_path": str(path), "vocab_only": True, "verbose": False}
            self._vocabularies[path] = await anyio.to_thread.run_sync(lambda: _construct(Llama, settings))
        return self._vocabularies[path]

    async def tokenize(
        self, text: str, add_bos: bool = False, add_eos: bool = False, model_name: str | None = None
    ) -> list[int]:
        _, path = resolve_model(model_name or self.default_model_name, self.models_folder)
        vocabulary = await self._vocabulary(path)

        def work() -> list[int]:
            with self._vocabulary_lock:
                tokens = list(vocabulary.tokenize(text.encode("utf-8"), add_bos=False, special=True))
                # Explicit, because llama.cpp adds BOS only for models whose metadata asks for it.
                if add_bos and vocabulary.token_bos() >= 0:
                    tokens.insert(0, vocabulary.token_bos())
                if add_eos:
                    tokens.append(vocabulary.token_eos())
                return tokens

        return await anyio.to_thread.run_sync(work)

    async def detokenize(self, tokens: list[int], model_name: str | None = None) -> str:
        _, path = resolve_model(model_name or self.default_model_name, self.models_folder)
        vocabulary = await self._vocabulary(path)
        size = vocabulary.n_vocab()
        invalid = [token for token in tokens if not 0 <= token < size]
        if invalid:  # llama.cpp does not check ids: an out-of-range one would crash the process
            raise BadRequestError(f"token ids out of range for this model (0..{size - 1}): {invalid[:10]}")

        def work() -> str:
            with self._vocabulary_lock:
                return bytes(vocabulary.detokenize(tokens)).decode("utf-8", errors="replace")

        return await anyio.to_thread.run_sync(work)

    # --- embeddings ----------------------------------------------------------------------------------
    async def embed(self, texts: list[str], model_name: str | None = None, **options: Any) -> dict[str, Any]:
        """Sentence embeddings of a GGUF model (embedding models pool themselves; others are mean-pooled)."""
        _, path = resolve_model(model_name or self.default_model_name, self.models_folder)
        if path not in self._embedders:
            from llama_cpp import Llama

            settings = {
                "model_path": str(path),
                "embedding": True,
                "n_ctx": int(self.config.get("n_ctx") or 0),
                "n_threads": self.config.get("n_threads"),
                "verbose": False,
            }
            async with self.resource_manager.acquire_gpu_resource(f"load embeddings of {path.name}"):
                self._embedders[path] = await anyio.to_thread.run_sync(lambda: _construct(Llama, settings))
        embedder = self._embedders[path]

        def work() -> dict[str, Any]:
            with self._embedding_lock:
                vectors = [_sentence_vector(embedder.embed(text)) for text in texts]
                tokens = sum(len(embedder.tokenize(text.encode("utf-8"))) for text in texts)
            return {"embeddings": vectors, "prompt_tokens": tokens}

        async with self.resource_manager.acquire_gpu_resource(f"embed on {self.binding_instance_name}"):
            return await anyio.to_thread.run_sync(work)

    # --- generation ----------------------------------------------------------------------------------
    def supports_structured_output(self) -> bool:
        return True

    @staticmethod
    def _response_format(params: dict[str, Any]) -> dict[str, Any]:
        """llama-cpp-python turns a JSON schema (or any JSON) into a grammar that constrains sampling."""
        requested = params.get("response_format") or {}
        if requested.get("type") not in ("json_object", "json_schema"):
            return {}
        # OpenAI's shape: {"type": "json_schema", "json_schema": {"name", "schema"}} or {"type": "json_object"}.
        schema = (requested.get("json_schema") or {}).get("schema") or requested.get("schema")
        return {"response_format": {"type": "json_object", **({"schema": schema} if schema else {})}}

    def _options(self, params: dict[str, Any]) -> dict[str, Any]:
        options = {key: params[key] for key in (*SAMPLING_OPTIONS, *PASSTHROUGH_OPTIONS) if key in params}
        if "seed" not in options and int(self.config.get("seed", -1)) >= 0:
            options["seed"] = int(self.config["seed"])
        return options

    async def generate(
        self,
        prompt: str,
        params: dict[str, Any],
        request_info: dict[str, Any],
        multimodal_data: list[Any] | None = None,
    ) -> dict[str, Any]:
        # Nobody watches the tokens go by: hand them over once, at the end (cancellation still works).
        return await collect_text(self._generate(request_info, params, multimodal_data, prompt, math.inf))

    async def generate_stream(
        self,
        prompt: str,
        params: dict[str, Any],
        request_info: dict[str, Any],
        multimodal_data: list[Any] | None = None,
    ) -> AsyncGenerator[dict[str, Any], None]:
        interval = int(self.config.get("stream_interval_ms", 20)) / 1000
        async for chunk in self._generate(request_info, params, multimodal_data, prompt, interval):
            yield chunk

    async def _generate(
        self,
        request_info: dict[str, Any],
        params: dict[str, Any],
        multimodal_data: list[Any] | None,
        prompt: str,
        hand_over_every: float,
    ) -> AsyncGenerator[dict[str, Any], None]:
        if multimodal_data:
            kinds = ", ".join(sorted({f"{item.type}/{item.role}" for item in multimodal_data}))
            raise BadRequestError(f"llamacpp_binding takes text only; got {kinds}")
        messages = request_info.get("messages") or [{"role": "user", "content": prompt}]
        name, path = resolve_model(request_info.get("model_name") or self.default_model_name, self.models_folder)
        options = self._options(params)
        completion_tokens = 0
        finish_reason = None
        async with self.resource_manager.acquire_gpu_resource(f"generate on {self.binding_instance_name}"):
            async with self._model_lock:
                llm = await self._ensure_loaded(path, name)
                default_last_n = llm.last_n_tokens_size
                if params.get("repeat_last_n") is not None:
                    llm.last_n_tokens_size = int(params["repeat_last_n"])
                try:
                    if request_info.get("raw_prompt"):
                        start = completion_pieces(llm, prompt, options)
                    else:
                        start = chat_pieces(llm, messages, {**options, **self._response_format(params)})
                    async for piece, finish in stream_pieces(start, hand_over_every):
                        if piece:
                            completion_tokens += 1
                            yield {"type": "chunk", "content": piece}
                        finish_reason = finish or finish_reason
                finally:
                    llm.last_n_tokens_size = default_last_n
                prompt_tokens = max(int(llm.n_tokens) - completion_tokens, 0)
        usage = token_usage(prompt_tokens, completion_tokens)
        yield {
            "type": "final",
            "content": None,
            "metadata": {"model": name, "usage": usage, "finish_reason": finish_reason or "stop"},
        }
