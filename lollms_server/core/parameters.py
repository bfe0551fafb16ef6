"""Generation parameters: one normalized vocabulary, layered config defaults < personality < request."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from lollms_server.core.errors import BadRequestError


class GenerationParameters(BaseModel):
    """The parameters every text binding understands; other keys pass through to the binding."""

    model_config = ConfigDict(extra="allow")

    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0.0)
    top_k: int | None = Field(default=None, ge=0)
    top_p: float | None = Field(default=None, ge=0.0, le=1.0)
    repeat_penalty: float | None = Field(default=None, ge=0.0)
    repeat_last_n: int | None = Field(default=None, ge=0)
    seed: int | None = None
    stop: list[str] | None = None

    @field_validator("stop", mode="before")
    @classmethod
    def _stop_as_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


def layer_parameters(*layers: Mapping[str, Any] | None) -> dict[str, Any]:
    """Merge layers, later ones winning (None values do not override); stop sequences accumulate."""
    merged: dict[str, Any] = {}
    stops: list[str] = []
    for layer in layers:
        if not layer:
            continue
        try:
            checked = GenerationParameters.model_validate(dict(layer)).model_dump(exclude_none=True)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}" for error in exc.errors()
            )
            raise BadRequestError(f"invalid parameters: {problems}") from None
        for stop in checked.pop("stop", []):
            if stop not in stops:
                stops.append(stop)
        merged.update(checked)
    if stops:
        merged["stop"] = stops
    return merged
