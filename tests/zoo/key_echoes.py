"""An API key as careless upstreams echo it back, and a check that no form of it got through."""

from __future__ import annotations

from urllib.parse import quote, quote_plus

FRAGMENT = 8  # characters of a key in a row that count as a leak


def echoes(key: str) -> str:
    """``key`` whole, truncated at both ends, URL-encoded, upper- and lower-cased, as one message."""
    return " | ".join(
        [key, f"{key[:12]}...", f"...{key[-10:]}", quote(key, safe=""), quote_plus(key), key.upper(), key.lower()]
    )


def leaks(text: str, key: str) -> list[str]:
    """The pieces of ``key`` (FRAGMENT characters or more, in any case, URL-encoded or not) found in ``text``."""
    lowered = text.lower()
    found = []
    for form in {key.lower(), quote(key, safe="").lower(), quote_plus(key).lower()}:
        found += [form[i : i + FRAGMENT] for i in range(len(form) - FRAGMENT + 1) if form[i : i + FRAGMENT] in lowered]
    return found
