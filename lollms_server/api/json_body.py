"""Request bodies of the APIs are JSON whatever their declared type, as Ollama and OpenAI read them.

Clients such as litellm's Ollama provider send JSON with no Content-Type, or as ``text/plain`` or a form
type; FastAPI parses a body only when it is declared as JSON. The body guard (``api/body_limit.py``) declares
it so for every API route (the lollms, OpenAI- and Ollama-compatible ones), before routing, so routes added
later are covered.

Two exceptions. Multipart bodies (file uploads) keep their type. Browsers keep FastAPI's strict check: a
page may send ``text/plain`` to another site without a CORS preflight, so a request that carries an
``Origin`` must declare JSON (415 otherwise); that keeps a server running without a key safe from pages
the user visits (cross-site request forgery).
"""

from __future__ import annotations

from starlette.types import Scope

from lollms_server.api.auth import PROTECTED_PREFIXES

CONTENT_TYPE = b"content-type"
_JSON = (CONTENT_TYPE, b"application/json")


def declares_json(content_type: bytes) -> bool:
    """application/json or a JSON-based type (application/*+json), whatever its parameters."""
    media_type = content_type.split(b";", 1)[0].strip().lower()
    return media_type == b"application/json" or (media_type[:12] == b"application/" and media_type[-5:] == b"+json")


class NotJsonError(Exception):
    """A browser sent an API request whose body is not declared as JSON (answered 415)."""


def as_json_request(scope: Scope, content_type: bytes, from_browser: bool) -> Scope:
    """The scope an API request with a body is routed with: its own when it declares JSON or multipart (or is
    not an API request), else a copy declaring application/json. NotJsonError for a browser's other types."""
    if not scope["path"].startswith(PROTECTED_PREFIXES):
        return scope
    if declares_json(content_type) or content_type[:10].lower() == b"multipart/":
        return scope
    if from_browser:
        declared = content_type[:100].decode("latin-1") or "no Content-Type"
        raise NotJsonError(
            f"send the body as JSON with Content-Type: application/json (this request declares {declared})"
        )
    headers = [(name, value) for name, value in scope["headers"] if name != CONTENT_TYPE]
    return {**scope, "headers": [*headers, _JSON]}
