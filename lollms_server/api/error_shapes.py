"""Error bodies by API: each dialect declares its own shape (the paths it owns, the body its clients read, the model
that documents it) beside its wire models; the app registers them (``ErrorShapes``), and every error answer and
the OpenAPI schema ask ``for_path`` — the one choice. Paths no dialect owns answer with ours."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from starlette.types import Scope

from lollms_server.api.models import ErrorResponse

# (status, code, detail, request id, field errors of a 422) -> the body
ErrorBody = Callable[[int, str, str, "str | None", "list[dict[str, Any]] | None"], dict[str, Any]]


@dataclass(frozen=True)
class ErrorShape:
    """How one API answers errors: the path prefixes it owns (but not ``except_prefixes``), its body, its model."""

    prefixes: tuple[str, ...]
    body: ErrorBody
    model: type[BaseModel]
    except_prefixes: tuple[str, ...] = ()

    def owns(self, path: str) -> bool:
        return path.startswith(self.prefixes) and not path.startswith(self.except_prefixes or ("\0",))

    @property
    def precision(self) -> int:
        """The longest prefix: a shape owning ``/v1/messages`` is asked before one owning ``/v1/``."""
        return max((len(prefix) for prefix in self.prefixes), default=0)


def native_body(
    status: int, code: str, detail: str, request_id: str | None, errors: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"detail": detail, "code": code, "request_id": request_id}
    if errors is not None:
        body["errors"] = errors
    return body


NATIVE = ErrorShape((), native_body, ErrorResponse)


class ErrorShapes:
    """The registered shapes, the most precise owner first."""

    def __init__(self, *shapes: ErrorShape) -> None:
        self._shapes = sorted(shapes, key=lambda shape: -shape.precision)

    def for_path(self, path: str) -> ErrorShape:
        return next((shape for shape in self._shapes if shape.owns(path)), NATIVE)


NATIVE_ONLY = ErrorShapes()


def shapes_of(scope: Scope) -> ErrorShapes:
    """The shapes the app serving ``scope`` registered (ours only outside such an app)."""
    app = scope.get("app")
    state = getattr(app, "state", None)
    shapes = getattr(state, "error_shapes", None)
    return shapes if isinstance(shapes, ErrorShapes) else NATIVE_ONLY
