"""Exceptions of the domain; the API maps each class to one HTTP status in one table."""

from __future__ import annotations


class LollmsError(Exception):
    """Base class of every error lollms_server raises on purpose."""


class ConfigError(LollmsError):
    """A configuration file cannot be used; ``problems`` holds one readable line per problem."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class NotFoundError(LollmsError):
    """A named binding instance, model or personality does not exist."""


class ForbiddenError(LollmsError):
    """The caller's key may not do this (a model or personality outside its list, an admin action)."""


class BadRequestError(LollmsError):
    """The request is well-formed but cannot be served as asked (wrong input type, no default binding...)."""


class CapabilityError(LollmsError):
    """The binding does not implement the requested feature (maps to 501)."""


class UnavailableError(LollmsError):
    """A required binding or manager is configured but not usable right now (maps to 503)."""


class RetryLaterError(LollmsError):
    """A refusal that a later retry may not get; ``retry_after`` (seconds) becomes the Retry-After header."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RateLimitedError(RetryLaterError):
    """A per-key limit refuses the request (the middleware refuses most requests; this, what only the generation
    can know: its tokens)."""


class QueueTimeoutError(RetryLaterError):
    """The request waited longer than ``resource_manager.queue_timeout`` for a resource slot."""


class QueueFullError(RetryLaterError):
    """``resource_manager.max_queue`` requests are already waiting: refused at once rather than queued."""


class RelayLoopError(LollmsError):
    """A request came back to a lollms server it had passed through, or passed through too many (maps to 508)."""


class PayloadTooLargeError(LollmsError):
    """An input is over one of the configured size limits (maps to 413)."""


class BackendError(LollmsError):
    """The backend behind a remote binding failed; the subclass says how. ``retryable`` errors may be retried
    before the first byte of an answer has been passed on."""

    retryable = False


class BackendUnreachableError(BackendError):
    """The backend could not be reached (connection refused, DNS, reset)."""

    retryable = True


class BackendTimeoutError(BackendError):
    """The backend did not answer within the instance's timeout."""

    retryable = True


class BackendFailedError(BackendError):
    """The backend answered with a server error (5xx) or something unusable."""

    retryable = True


class BackendLoopError(BackendError):
    """The backend answered 508 Loop Detected: the request came back to a lollms server it had passed through (the
    instance's address leads back here, directly or through other servers). Not retried."""


class BackendAuthError(BackendError):
    """The backend refused the instance's credentials (its 401/403)."""


class BackendRateLimitError(BackendError, RetryLaterError):
    """The backend asked us to slow down (its 429)."""

    retryable = True
