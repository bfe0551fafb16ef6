"""Per-key limits on every API request, applied by the key check once it knows who asks (no layer of its own):
a request is admitted (counted,
holding a concurrency slot until its response has been sent, streams included) or refused with 429,
``Retry-After`` and OpenAI's ``x-ratelimit-*`` headers, in the error shape of the API it was sent to.

When the shared store (Redis) cannot be reached, ``shared_state.failure_policy`` decides: ``closed`` answers 503,
``open`` lets the request through unlimited. Either way it is logged (once per outage) and counted."""

from __future__ import annotations

from collections.abc import Callable

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lollms_server.api.errors import error_response
from lollms_server.api.metrics import METRICS_PATH
from lollms_server.core.api_keys import Principal
from lollms_server.core.quotas import LimitStore, StoreHealth, StoreUnavailableError

LIMIT_WORDS = {
    "requests_per_minute": "requests per minute",
    "tokens_per_minute": "tokens per minute",
    "tokens_per_day": "tokens per day",
    "concurrent_requests": "concurrent requests",
}


class Limiter:
    def __init__(
        self,
        store: Callable[[], LimitStore | None],
        fail_open: bool,
        health: StoreHealth,
        on_refused: Callable[[str, str], None] | None = None,
    ) -> None:
        self.store = store
        self.fail_open = fail_open
        self.health = health
        self.on_refused = on_refused

    async def run(self, app: ASGIApp, principal: Principal, scope: Scope, receive: Receive, send: Send) -> None:
        """Run ``app`` for ``principal`` within its limits, or answer 429 (or 503 when the store is down)."""
        # Monitoring is not usage: /metrics stays readable (during a Redis outage above all).
        store = self.store() if scope["path"] != METRICS_PATH else None
        if store is None:
            await app(scope, receive, send)
            return
        if store.counts_locally and not principal.limits.any:  # the common case: count it, nothing to enforce
            store.count_request(principal.name)
            await app(scope, receive, send)
            return
        try:
            admission = await store.admit(principal.name, principal.limits)
            self.health.answered()
        except StoreUnavailableError as exc:
            self.health.failed(exc)
            # A key without limits needs no shared state to be served (its usage of this request goes uncounted).
            if self.fail_open or not principal.limits.any:
                await app(scope, receive, send)
                return
            response = error_response(
                Request(scope),
                503,
                "limits_unavailable",
                "the shared limits store is unreachable; retry shortly",
                headers={"Retry-After": "5"},
            )
            await response(scope, receive, send)
            return
        if not admission.allowed:
            refused_by = admission.refused_by or "limit"
            if self.on_refused is not None:
                self.on_refused(principal.name, refused_by)
            limit = getattr(principal.limits, refused_by, None)
            detail = f"rate limit reached for key '{principal.name}': {limit} {LIMIT_WORDS.get(refused_by, refused_by)}"
            headers = {**admission.headers, "Retry-After": str(admission.retry_after)}
            response = error_response(
                Request(scope), 429, "rate_limited", f"{detail}; retry in {admission.retry_after} s", headers=headers
            )
            await response(scope, receive, send)
            return
        if not admission.headers and admission.lease is None:  # a key without limits: nothing to add or free
            await app(scope, receive, send)
            return
        extra = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in admission.headers.items()]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start" and extra:
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        try:
            await app(scope, receive, send_with_headers)
        finally:
            if admission.lease is not None:
                try:
                    await store.release(principal.name, admission.lease)
                except StoreUnavailableError as exc:  # the lease expires on its own (shared_state.lease_seconds)
                    self.health.failed(exc)
