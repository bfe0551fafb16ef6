"""The LOLLMS personality ``config.yaml`` format, read as the community writes it.

Community files vary: ``version`` may be a float, ``category`` a list, ``personality_conditioning`` a list
of lines, numbers may be quoted. Unknown keys (``prompts_list``, ``commands``, ``disclaimer``...) are kept.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from lollms_server.core.parameters import validate_parameters

# LOLLMS model_* keys -> the normalized generation vocabulary.
MODEL_PARAMETER_KEYS = {
    "model_temperature": "temperature",
    "model_n_predicts": "max_tokens",
    "model_top_k": "top_k",
    "model_top_p": "top_p",
    "model_repeat_penalty": "repeat_penalty",
    "model_repeat_last_n": "repeat_last_n",
}


def _text(value: Any) -> Any:
    if isinstance(value, list):
        return "\n".join(str(item) for item in value)
    return value


def _string_list(value: Any) -> Any:
    if value is None:
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, list):
        return [str(item) for item in value if item is not None]
    return value


class PersonalityConfig(BaseModel):
    """One personality's config.yaml; extra keys are kept as they are."""

    model_config = ConfigDict(extra="allow", protected_namespaces=())

    name: str
    personality_conditioning: str
    author: str = "unknown"
    version: str = "1.0"
    category: str | None = None
    language: str | None = None
    personality_description: str = ""
    welcome_message: str | None = None
    user_message_prefix: str | None = None
    ai_message_prefix: str | None = None
    disclaimer: str | None = None
    icon: str | None = None
    tags: list[str] = Field(default_factory=list)
    dependencies: list[str] = Field(default_factory=list)
    anti_prompts: list[str] = Field(default_factory=list)
    script_path: str | None = None
    recommended_binding: str | None = None
    recommended_model: str | None = None
    # Our extension: a personality that must be switched on explicitly in personalities_config.
    enabled_by_default: bool = True
    model_temperature: float | None = None
    model_n_predicts: int | None = None
    model_top_k: int | None = None
    model_top_p: float | None = None
    model_repeat_penalty: float | None = None
    model_repeat_last_n: int | None = None

    @field_validator("version", "author", mode="before")
    @classmethod
    def _as_string(cls, value: Any) -> Any:
        return "unknown" if value is None else str(value) if isinstance(value, (int, float)) else value

    @field_validator("category", mode="before")
    @classmethod
    def _category(cls, value: Any) -> Any:
        return ", ".join(str(item) for item in value) if isinstance(value, list) else value

    @field_validator("personality_conditioning", "personality_description", "welcome_message", mode="before")
    @classmethod
    def _joined_text(cls, value: Any) -> Any:
        return _text(value)

    @field_validator("tags", "dependencies", "anti_prompts", mode="before")
    @classmethod
    def _lists(cls, value: Any) -> Any:
        return _string_list(value)

    def generation_parameters(self) -> dict[str, Any]:
        """The model_* settings and anti_prompts in the normalized vocabulary (validated)."""
        raw: dict[str, Any] = {target: getattr(self, source) for source, target in MODEL_PARAMETER_KEYS.items()}
        if self.anti_prompts:
            raw["stop"] = [prompt for prompt in self.anti_prompts if prompt]
        return validate_parameters({key: value for key, value in raw.items() if value is not None})

    def extra_settings(self) -> dict[str, Any]:
        return dict(self.model_extra or {})
