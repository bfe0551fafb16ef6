"""Shared plumbing of remote bindings: timeouts and retries, and backend failures as our errors.

Each remote binding translates its SDK's exceptions with ``error_for_status`` / ``error_for_transport``
and wraps its calls in ``call_with_retries`` or ``stream_with_retries``. Retries happen only before the
first byte of an answer has been passed on; messages never carry the instance's secrets. Instance
schemas of remote bindings declare ``timeout``, ``max_retries`` and ``retry_backoff`` (``RetryPolicy``).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from lollms_server.core.errors import (
    BackendAuthError,
    BackendError,
    BackendFailedError,
    BackendRateLimitError,
    BackendTimeoutError,
    BackendUnreachableError,
    BadRequestError,
    LollmsError,
    NotFoundError,
)

T = TypeVar("T")

# Things that look like credentials, whatever the vendor: OpenAI-style sk-..., Google API keys, bearer tokens.
_CREDENTIAL_LIKE = re.compile(r"(sk-[A-Za-z0-9_\-*.]{4,}|AIza[A-Za-z0-9_\-]{10,}|Bearer\s+\S+)")
_MAX_UPSTREAM_MESSAGE = 300
_MAX_RETRY_DELAY = 30.0


@dataclass(frozen=True)
class RetryPolicy:
    timeout: float = 120.0
    max_retries: int = 2
    backoff: float = 0.5

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> RetryPolicy:
        return cls(
            timeout=float(config.get("timeout") or 120.0),
            max_retries=int(config.get("max_retries", 2)),
            backoff=float(config.get("retry_backoff", 0.5)),
        )

    def delay(self, attempt: int, error: LollmsError) -> float:
        retry_after = getattr(error, "retry_after", None)
        return min(retry_after if retry_after else self.backoff * (2**attempt), _MAX_RETRY_DELAY)


def sanitize(text: str, secrets: list[str]) -> str:
    """An upstream message fit for our clients and logs: secrets and credential-like strings masked."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    text = _CREDENTIAL_LIKE.sub("***", text)
    return text if len(text) <= _MAX_UPSTREAM_MESSAGE else text[:_MAX_UPSTREAM_MESSAGE] + "..."


def error_for_status(
    binding: str, status: int, upstream: str, secrets: list[str], retry_after: float | None = None
) -> LollmsError:
    """Our error for a backend's HTTP status."""
    detail = sanitize(upstream, secrets)
    if status in (401, 403):
        return BackendAuthError(
            f"binding '{binding}': the backend refused the instance's credentials (HTTP {status}); "
            f"check its api_key. Backend said: {detail}"
        )
    if status == 429:
        return BackendRateLimitError(
            f"binding '{binding}': the backend is rate limiting (HTTP 429); retry later. Backend said: {detail}",
            retry_after,
        )
    if status == 404:
        return NotFoundError(f"binding '{binding}': not found on the backend: {detail}")
    if status in (400, 413, 422):
        return BadRequestError(f"binding '{binding}': the backend rejected the request (HTTP {status}): {detail}")
    if status in (408, 504):
        return BackendTimeoutError(f"binding '{binding}': the backend timed out (HTTP {status})")
    return BackendFailedError(f"binding '{binding}': the backend failed (HTTP {status}): {detail}")


def error_for_transport(binding: str, exc: BaseException, timed_out: bool) -> LollmsError:
    """Our error for a failure to talk to the backend at all."""
    if timed_out:
        return BackendTimeoutError(f"binding '{binding}': the backend did not answer in time ({type(exc).__name__})")
    return BackendUnreachableError(f"binding '{binding}': the backend is unreachable ({type(exc).__name__})")


async def _retry_or_raise(
    exc: Exception, attempt: int, policy: RetryPolicy, classify: Callable[[Exception], LollmsError]
) -> None:
    """Sleep before the next attempt when the failure is retryable and attempts remain; raise otherwise."""
    if isinstance(exc, LollmsError):
        raise exc
    error = classify(exc)
    if not (isinstance(error, BackendError) and error.retryable and attempt < policy.max_retries):
        raise error from exc
    await asyncio.sleep(policy.delay(attempt, error))


async def call_with_retries(
    operation: Callable[[], Awaitable[T]], policy: RetryPolicy, classify: Callable[[Exception], LollmsError]
) -> T:
    """Run ``operation``, retrying retryable backend failures; raise our error for the last failure."""
    attempt = 0
    while True:
        try:
            return await operation()
        except Exception as exc:
            await _retry_or_raise(exc, attempt, policy, classify)
            attempt += 1


async def stream_with_retries(
    open_stream: Callable[[], Awaitable[AsyncIterator[T]]],
    policy: RetryPolicy,
    classify: Callable[[Exception], LollmsError],
) -> AsyncGenerator[T, None]:
    """Items of a backend stream. Opening it and waiting for its first item are retried; once an item has
    been passed on, a failure is raised (as our error) and never retried."""
    attempt = 0
    while True:
        try:
            iterator = aiter(await open_stream())
            first = await anext(iterator)
            break
        except StopAsyncIteration:
            return
        except Exception as exc:
            await _retry_or_raise(exc, attempt, policy, classify)
            attempt += 1
    try:
        yield first
        async for item in iterator:
            yield item
    except LollmsError:
        raise
    except Exception as exc:
        raise classify(exc) from exc
    finally:
        # Close the backend stream now, not whenever the garbage collector gets to it: its connection
        # goes back to the pool (or is dropped) as soon as our consumer stops.
        close = getattr(iterator, "aclose", None)
        if close is not None:
            with contextlib.suppress(Exception):
                await close()
