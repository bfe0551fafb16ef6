"""How the compatible APIs treat request fields they do not serve.

A field that would change the answer is refused with 400 (a ``Refusal`` says when and why), never dropped.
Fields nobody declared are accepted, because clients send many, and logged once per request as ignored
(as vLLM does), so an operator can see why a setting had no effect.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

from pydantic import BaseModel

from lollms_server.core.errors import BadRequestError

logger = logging.getLogger(__name__)


class Refusal(NamedTuple):
    """A field this server cannot honour: ``applies(value)`` says whether a request uses it, ``reason`` why not."""

    field: str
    applies: Callable[[Any], bool]
    reason: str


def more_than_one(value: int | None) -> bool:
    return value is not None and value > 1


def given(value: Any) -> bool:
    return value is not None


def refuse(source: BaseModel | Mapping[str, Any], refusals: Iterable[Refusal]) -> None:
    """400 (BadRequestError) for the first of ``refusals`` that ``source`` (a wire model or a dict) uses."""
    for refusal in refusals:
        value = source.get(refusal.field) if isinstance(source, Mapping) else getattr(source, refusal.field, None)
        if refusal.applies(value):
            raise BadRequestError(refusal.reason)


def unknown_fields(model: BaseModel, prefix: str = "") -> list[str]:
    """Names of the fields no model declares, nested ones as ``messages[].name``, sorted and without repeats."""
    found = {f"{prefix}{name}" for name in model.model_extra or ()}
    for name in model.model_fields_set & type(model).model_fields.keys():  # a default holds no unknown field
        value = getattr(model, name)
        items, inner = (value, f"{prefix}{name}[].") if isinstance(value, list) else ([value], f"{prefix}{name}.")
        for item in items:
            if isinstance(item, BaseModel):
                found.update(unknown_fields(item, inner))
    return sorted(found)


def log_ignored(api: str, request_id: str, fields: Iterable[str], why: str, level: int = logging.INFO) -> None:
    """One log line naming ``fields`` (if any) and why they had no effect."""
    names = list(fields)
    if names:
        logger.log(level, "%s request %s: ignored %s (%s)", api, request_id, ", ".join(names), why)
