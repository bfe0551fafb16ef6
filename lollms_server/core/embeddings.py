"""Embeddings over any binding that computes them, chosen by model id or ``defaults.embedding_binding``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lollms_server.core.binding_manager import BindingManager
from lollms_server.core.config import ServerConfig
from lollms_server.core.errors import BadRequestError
from lollms_server.core.limits import check_name


@dataclass(frozen=True)
class EmbeddingResult:
    model: str
    embeddings: list[list[float]]
    prompt_tokens: int | None


class EmbeddingService:
    def __init__(self, config: ServerConfig, bindings: BindingManager) -> None:
        self.config = config
        self.bindings = bindings
        self.limits = config.input_limits

    async def embed(self, texts: list[str], model_id: str | None, **options: Any) -> EmbeddingResult:
        """Vectors of ``texts``; options: ``input_type`` (query/passage), ``truncate`` (cut texts over the
        model's context instead of refusing them with 400)."""
        self.limits.check_embedding_inputs(texts)
        check_name("model", model_id)
        requested: str | None = None
        model: str | None = None
        if model_id:
            choice = self.bindings.model_ids.parse(model_id)
            if choice.binding_name is None:
                raise BadRequestError("personalities do not compute embeddings; name an embedding model")
            requested, model = choice.binding_name, choice.model_name
        binding_name = self.config.binding_for("embedding", requested)
        binding, resolved = await self.bindings.use(binding_name, model)
        result = await binding.embed(texts, resolved, **options)
        return EmbeddingResult(
            model=f"{binding_name}/{resolved}" if resolved else binding_name,
            embeddings=result["embeddings"],
            prompt_tokens=result.get("prompt_tokens"),
        )
