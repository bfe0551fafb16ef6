"""``server.public_url``: the address clients reach this server at, the base of every absolute URL it hands out.

No URL is ever built from a request's Host header: the client chooses it, and a forged one would turn an answer
into a link to another site (or poison a cache in front of the server). Without ``public_url`` the server hands
out paths (``/api/v1/artifacts/<id>``), which a client resolves against the address it called.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

MAX_PUBLIC_URL_CHARS = 2048


def public_url_problem(value: Any) -> str | None:
    """Why ``value`` cannot be ``server.public_url`` (the value itself is not repeated: it may carry a password);
    None when it can."""
    if not isinstance(value, str):
        return "write an absolute URL such as https://lollms.example.com (or null)"
    if not value or len(value) > MAX_PUBLIC_URL_CHARS or not value.isascii() or not value.isprintable():
        return f"write an absolute URL of at most {MAX_PUBLIC_URL_CHARS} printable ASCII characters"
    if any(char.isspace() for char in value) or "\\" in value:
        return "an URL has no spaces or backslashes"
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 (raises ValueError for a port out of range or not a number)
    except ValueError:
        return "not a valid URL: check the host and the port"
    if parts.scheme not in ("http", "https"):
        return "the scheme must be http or https, e.g. https://lollms.example.com"
    if not parts.hostname:
        return "name the host, e.g. https://lollms.example.com"
    if parts.username is not None or parts.password is not None:
        return "no user name or password in it: every URL handed out would carry them"
    if "?" in value or "#" in value:
        return "no query (?...) or fragment (#...): paths are appended to it"
    return None


def absolute_url(path: str, public_url: str | None) -> str:
    """``path`` (one of this server's, starting with /) under ``public_url``; the path itself without one."""
    return f"{public_url.rstrip('/')}{path}" if public_url else path
