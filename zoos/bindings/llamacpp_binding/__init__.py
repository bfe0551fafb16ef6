"""llamacpp_binding: GGUF models in-process with llama-cpp-python (blocking work in worker threads).

Models are loaded under their canonical identity (``models.ModelCatalog``) and registered with the server's
model residency (``resource_manager.models``): each loaded copy is bounded per instance and across the
server, least recently used first, and unloaded after ``keep_alive`` seconds idle.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import math
import os
import threading
from collections import OrderedDict
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from lollms_server.core.bindings import Binding, collect_outputs, token_usage
from lollms_server.core.compute_threads import run_compute
from lollms_server.core.errors import BadRequestError

from .grammars import GrammarBuilder
from .interrupt import DecodeInterrupt
from .models import ModelCatalog, ModelFile
from .runner import chat_pieces, completion_pieces, stream_batches
from .tool_calls import TOOL_ATTEMPTS, ToolAnswer, ToolMode, grammar_request, tool_mode, with_tools
from .vocabulary import Vocabulary

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
# Vocabulary-only copies kept per instance (tokenizer endpoints, prompt checks); the least recently used goes.
MAX_VOCABULARIES = 4
GENERATION, EMBEDDING = "generation", "embedding"


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


@dataclass(eq=False)
class LoadedModel:
    llm: Any
    lock: asyncio.Lock  # llama.cpp contexts are not thread-safe: one operation at a time per copy
    interrupt: DecodeInterrupt | None = None  # stops a generation inside a decode (generation copies)


def physical_cores() -> int:
    """The physical cores this process may run on: hyper-threads share a core's arithmetic units, so llama.cpp
    runs best with one thread per core (Linux: /proc/cpuinfo and the CPU affinity; elsewhere the logical count)."""
    logical = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return max(1, logical)
    cores, physical = set(), "0"
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "physical id":
            physical = value.strip()
        elif key.strip() == "core id":
            cores.add((physical, value.strip()))
    return max(1, min(len(cores) or logical, logical))


class LlamaCppBinding(Binding):
    binding_type_name = "llamacpp_binding"
    input_modalities = ("text",)
    output_modalities = ("text", "embedding")
    tasks = ("ttt",)
    streams = True

    def __init__(self, config: dict[str, Any], resource_manager: Any) -> None:
        super().__init__(config, resource_manager)
        self._loaded: dict[tuple[str, Path], LoadedModel] = {}
        self._load_lock = asyncio.Lock()
        self._vocabularies: OrderedDict[Path, Vocabulary] = OrderedDict()
        self._vocabulary_lock = asyncio.Lock()
        self._catalog: tuple[Any, ModelCatalog] | None = None
        self._grammars = GrammarBuilder(
            float(config.get("grammar_timeout", 10.0)), int(config.get("grammar_memory_mb", 1024))
        )

    @property
    def catalog(self) -> ModelCatalog:
        """The instance's catalog, kept while its settings stay the same: its memory of recent resolutions lets a
        request resolve its model once on disk, not at every step (on the event loop)."""
        allowed = self.config.get("allowed_model_folders")
        key = (self.models_folder, self.default_model_name, tuple(allowed or ()))
        if self._catalog is None or self._catalog[0] != key:
            self._catalog = (key, ModelCatalog(self.models_folder, self.default_model_name, allowed))
        return self._catalog[1]

    @property
    def _residency(self) -> Any:
        return self.resource_manager.models

    # --- capabilities ------------------------------------------------------------------------------
    def get_resource_requirements(self) -> dict[str, Any]:
        return {"gpu_required": True}  # local compute: admitted by the resource manager, GPU or not

    def supports_input_role(self, data_type: str, role: str) -> bool:
        return data_type == "text" and role in ("user_prompt", "assistant_reply", "system_context")

    def settings_problem(self) -> str | None:
        """llama-cpp-python installed, and the default model one this instance can load (what the start and
        `lollms-server check-config` both ask)."""
        if importlib.util.find_spec("llama_cpp") is None:
            return "llama-cpp-python is not installed"
        try:
            self.catalog.resolve(None)
        except Exception as exc:
            return f"default model unavailable: {exc}"
        return None

    # --- models --------------------------------------------------------------------------------------
    async def resolve_model(self, model_name: str | None) -> str | None:
        model = self.catalog.recent(model_name)  # resolved a moment ago: no file to look at, no thread hop
        if model is None:
            model = await anyio.to_thread.run_sync(self.catalog.resolve, model_name)
        return model.name

    def residency_key(self, model_name: str | None) -> Any:
        model = self.catalog.resolve(model_name)
        return (self.binding_instance_name, (GENERATION, model.canonical))

    async def list_available_models(self) -> list[dict[str, Any]]:
        models = await anyio.to_thread.run_sync(self.catalog.list_models)
        for model in models:
            model["context_size"] = self.config.get("n_ctx") or None
        return models

    async def load_model(self, model_name: str) -> bool:
        async with self._using(self.catalog.resolve(model_name), GENERATION):
            return True

    async def unload_model(self) -> bool:
        await self._residency.unload(self.binding_instance_name)
        await self._grammars.aclose()  # the grammar worker too (started again when a schema comes)
        return True

    def _settings(self, model: ModelFile, kind: str) -> dict[str, Any]:
        threads = self.config.get("n_threads") or physical_cores()
        settings: dict[str, Any] = {
            "model_path": str(model.canonical),
            "n_threads": threads,
            "n_threads_batch": self.config.get("n_threads_batch") or threads,
            "n_gpu_layers": int(self.config.get("n_gpu_layers", 0)),
            "verbose": False,
        }
        if kind == EMBEDDING:
            # Any text that fits the context embeds whole (llama.cpp otherwise needs it within one batch).
            context = int(self.config.get("n_ctx") or 0) or self._training_context(model) or 512
            return {**settings, "embedding": True, "n_ctx": context, "n_batch": context, "n_ubatch": context}
        return {
            **settings,
            "n_ctx": int(self.config.get("n_ctx", 4096)),
            "n_batch": int(self.config.get("n_batch", 512)),
            "chat_format": self.config.get("chat_format"),
        }

    def _training_context(self, model: ModelFile) -> int | None:
        vocabulary = self._vocabularies.get(model.canonical)
        return vocabulary.metadata["training_context_size"] if vocabulary else None

    @asynccontextmanager
    async def _using(self, model: ModelFile, kind: str) -> AsyncIterator[LoadedModel]:
        """The loaded copy of ``model`` for ``kind``, loading it (within the residency limits) if needed; it
        stays loaded at least until the body ends."""
        key = (kind, model.canonical)
        residency_key = (self.binding_instance_name, key)
        async with self._load_lock:
            loaded = self._loaded.get(key) if self._residency.is_loaded(residency_key) else None
            if loaded is not None:
                self._residency.enter(residency_key)
            else:
                if kind == EMBEDDING:
                    await self._vocabulary(model)  # its metadata sizes the embedding context
                limit = int(self.config.get("max_loaded_models") or 1)
                async with self._residency.loading(self.binding_instance_name, limit):
                    settings = self._settings(model, kind)
                    from llama_cpp import Llama

                    async with self.resource_manager.acquire_gpu_resource(
                        f"load {model.name} on {self.binding_instance_name}"
                    ):
                        llm = await run_compute(_construct, Llama, settings)
                    loaded = LoadedModel(llm, asyncio.Lock(), DecodeInterrupt(llm) if kind == GENERATION else None)
                    self._loaded[key] = loaded
                    keep_alive = float(self.config.get("keep_alive", 300))
                    self._residency.add(
                        residency_key,
                        self._unloader(key, loaded),
                        keep_alive if keep_alive >= 0 else None,
                        name=model.name,
                        size=model.path.stat().st_size,
                    )
                logger.info("Loaded %s (%s) on %s", model.name, kind, self.binding_instance_name)
        try:
            yield loaded
        finally:
            await self._residency.leave(residency_key)

    def _unloader(self, key: tuple[str, Path], loaded: LoadedModel) -> Callable[[], Any]:
        async def unload() -> None:
            if self._loaded.get(key) is loaded:
                del self._loaded[key]
            async with loaded.lock:  # never close a model a thread is still using
                await run_compute(loaded.llm.close)

        return unload

    def loaded_models(self) -> list[str]:
        return [f"{kind}:{path.name}" for kind, path in self._loaded]

    async def get_model_info(self, model_name: str | None = None) -> dict[str, Any]:
        model = await anyio.to_thread.run_sync(self.catalog.resolve, model_name)
        vocabulary = await self._vocabulary(model)
        configured = int(self.config.get("n_ctx", 0)) or None
        training = vocabulary.metadata["training_context_size"]
        residency_key = (self.binding_instance_name, (GENERATION, model.canonical))
        return {
            "model_name": model.name,
            "model_type": "ttt",
            "context_size": configured or training,
            "max_output_tokens": None,
            "supports_vision": False,
            "supports_audio": False,
            "supports_streaming": True,
            "details": {
                "format": "gguf",
                **vocabulary.metadata,
                "configured_context_size": configured,
                "file_size": model.path.stat().st_size,
                "source": model.source,
                "loaded": self._residency.is_loaded(residency_key),
            },
        }

    # --- tokenizer -----------------------------------------------------------------------------------
    async def _vocabulary(self, model: ModelFile) -> Vocabulary:
        """A vocab-only llama for ``model`` (cheap, independent of the generation context), kept LRU."""
        async with self._vocabulary_lock:
            vocabulary = self._vocabularies.get(model.canonical)
            if vocabulary is None:
                path, chat_format = str(model.canonical), self.config.get("chat_format")
                vocabulary = await anyio.to_thread.run_sync(lambda: Vocabulary(path, chat_format))
                self._vocabularies[model.canonical] = vocabulary
                while len(self._vocabularies) > MAX_VOCABULARIES:
                    self._vocabularies.popitem(last=False)
            self._vocabularies.move_to_end(model.canonical)
            return vocabulary

    async def tokenize(
        self, text: str, add_bos: bool = False, add_eos: bool = False, model_name: str | None = None
    ) -> list[int]:
        vocabulary = await self._vocabulary(self.catalog.resolve(model_name))
        return await anyio.to_thread.run_sync(vocabulary.tokenize, text, add_bos, add_eos)

    async def detokenize(self, tokens: list[int], model_name: str | None = None) -> str:
        vocabulary = await self._vocabulary(self.catalog.resolve(model_name))
        size = vocabulary.n_vocab()
        invalid = [token for token in tokens if not 0 <= token < size]
        if invalid:  # llama.cpp does not check ids: an out-of-range one would crash the process
            raise BadRequestError(f"token ids out of range for this model (0..{size - 1}): {invalid[:10]}")
        return await anyio.to_thread.run_sync(vocabulary.detokenize, tokens)

    # --- prompt size -----------------------------------------------------------------------------------
    def _context_size(self, vocabulary: Vocabulary) -> int:
        return int(self.config.get("n_ctx") or 0) or vocabulary.metadata["training_context_size"] or 512

    async def count_prompt_tokens(self, prompt: str, params: dict[str, Any], request_info: dict[str, Any]) -> int:
        """The prompt's exact token count as generation will see it; BadRequestError when it cannot fit."""
        model = self.catalog.resolve(request_info.get("model_name"))
        vocabulary = await self._vocabulary(model)
        messages = None if request_info.get("raw_prompt") else self._messages(prompt, request_info, params)
        options = self._options(params)  # a grammar (response_format, tools) adds nothing to the prompt
        context = self._context_size(vocabulary)
        return await anyio.to_thread.run_sync(
            lambda: vocabulary.check_fits(model.name, context, messages, prompt, options)
        )

    # --- embeddings ----------------------------------------------------------------------------------
    async def embed(self, texts: list[str], model_name: str | None = None, **options: Any) -> dict[str, Any]:
        """Sentence embeddings of a GGUF model (embedding models pool themselves; others are mean-pooled).

        Texts over the model's context are refused (OpenAI's behaviour), or cut when ``truncate`` is true
        (Ollama's). Each text is a separate step: a client that leaves stops the work after the current one,
        and other requests get their turn between texts."""
        model = self.catalog.resolve(model_name)
        vocabulary = await self._vocabulary(model)
        limit = self._context_size(vocabulary)
        truncate = bool(options.get("truncate", False))
        checked = [
            await anyio.to_thread.run_sync(vocabulary.check_embedding_input, text, f"input[{index}]", limit, truncate)
            for index, text in enumerate(texts)
        ]
        vectors: list[list[float]] = []
        async with self.resource_manager.acquire_gpu_resource(f"embed on {self.binding_instance_name}"):
            async with self._using(model, EMBEDDING) as loaded:
                for text, _ in checked:
                    async with loaded.lock:
                        vectors.append(await run_compute(self._vector, loaded, text))
        return {"embeddings": vectors, "prompt_tokens": sum(tokens for _, tokens in checked)}

    @staticmethod
    def _vector(loaded: LoadedModel, text: str) -> list[float]:
        return _sentence_vector(loaded.llm.embed(text))

    # --- generation ----------------------------------------------------------------------------------
    def supports_structured_output(self) -> bool:
        return True

    async def _grammar(self, model: ModelFile, params: dict[str, Any], mode: ToolMode | None) -> str | None:
        """The grammar sampling must follow: the tools' calls, or the response format's JSON (schema). Client
        schemas are built into grammars in the grammar worker (``grammars.py``), never in this process."""
        if mode is not None:
            schema, root = grammar_request(mode)
            return await self._grammars.build(model.path, schema, root, "tools (their parameters)")
        requested = params.get("response_format") or {}
        if requested.get("type") not in ("json_object", "json_schema"):
            return None
        # OpenAI's shape: {"type": "json_schema", "json_schema": {"name", "schema"}} or {"type": "json_object"}.
        schema = (requested.get("json_schema") or {}).get("schema") or requested.get("schema")
        if not schema:
            from llama_cpp.llama_grammar import JSON_GBNF

            return str(JSON_GBNF)
        return await self._grammars.build(model.path, schema, None, "response_format (its schema)")

    def _options(self, params: dict[str, Any]) -> dict[str, Any]:
        options = {key: params[key] for key in (*SAMPLING_OPTIONS, *PASSTHROUGH_OPTIONS) if key in params}
        if "seed" not in options and int(self.config.get("seed", -1)) >= 0:
            options["seed"] = int(self.config["seed"])
        return options

    @staticmethod
    def _messages(prompt: str, request_info: dict[str, Any], params: dict[str, Any]) -> list[dict[str, Any]]:
        """The chat turns the template renders: tool calls and results as text, the tools in the system message."""
        return with_tools(request_info.get("messages") or [{"role": "user", "content": prompt}], tool_mode(params))

    async def generate(
        self,
        prompt: str,
        params: dict[str, Any],
        request_info: dict[str, Any],
        multimodal_data: list[Any] | None = None,
    ) -> list[dict[str, Any]]:
        # Nobody watches the tokens go by: hand them over once, at the end (cancellation still works).
        return await collect_outputs(self._generate(request_info, params, multimodal_data, prompt, math.inf))

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
        model = self.catalog.resolve(request_info.get("model_name"))
        prompt_tokens = request_info.get("prompt_tokens")
        if prompt_tokens is None:  # a workflow's own call: nobody has checked the prompt yet
            prompt_tokens = await self.count_prompt_tokens(prompt, params, request_info)
        options = self._options(params)
        mode = None if request_info.get("raw_prompt") else tool_mode(params)
        grammar = None if request_info.get("raw_prompt") else await self._grammar(model, params, mode)
        completion_tokens = 0
        finish_reason = None
        residency_key = (self.binding_instance_name, (GENERATION, model.canonical))
        async with self.resource_manager.acquire_gpu_resource(
            f"generate on {self.binding_instance_name}", model=residency_key
        ):
            async with self._using(model, GENERATION) as loaded, loaded.lock:
                llm = loaded.llm
                default_last_n = llm.last_n_tokens_size
                if params.get("repeat_last_n") is not None:
                    llm.last_n_tokens_size = int(params["repeat_last_n"])
                if "seed" in options:
                    # A seeded answer must not depend on what the context holds from earlier requests
                    # (a reused prefix is evaluated in other batches, with other rounding): start afresh.
                    llm.reset()
                try:
                    attempts = TOOL_ATTEMPTS if mode is not None else 1
                    for attempt in range(attempts):
                        if request_info.get("raw_prompt"):
                            start = completion_pieces(llm, prompt, options)
                        elif mode is not None:  # sampling constrained to the tools' calls (or, with auto, text)
                            # A call that failed its schema is sampled again, nothing of it having been sent.
                            seeded = {**options, "seed": options.get("seed", 0) + attempt} if attempt else options
                            start = chat_pieces(llm, self._messages(prompt, request_info, params), seeded, grammar)
                        else:
                            start = chat_pieces(llm, self._messages(prompt, request_info, params), options, grammar)
                        answer = ToolAnswer(mode)
                        async for batch in stream_batches(start, hand_over_every, loaded.interrupt):
                            if batch.text:
                                completion_tokens += batch.tokens
                                for chunk in answer.feed(batch.text):
                                    yield chunk
                            finish_reason = batch.finish_reason or finish_reason
                        ending = answer.end(last_attempt=attempt == attempts - 1)
                        if ending is not None:
                            for chunk in ending:
                                yield chunk
                            break
                finally:
                    llm.last_n_tokens_size = default_last_n
        usage = token_usage(prompt_tokens, completion_tokens)
        yield {
            "type": "final",
            "content": None,
            "metadata": {"model": model.name, "usage": usage, "finish_reason": finish_reason or "stop"},
        }
