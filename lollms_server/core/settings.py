"""Typed settings of main-config sections, read once from the validated values (never as strings where used)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ServerSettings:
    """The ``server`` section's settings the running server reads (host, port and origins go to uvicorn and CORS
    through ``values``)."""

    workers: int
    shutdown_grace_seconds: float
    sse_keepalive_interval: float
    binding_recheck_interval: float
    function_timeout: float
    function_memory_bytes: int
    function_workers: int
    max_relay_hops: int
    opentelemetry: bool
    otlp_endpoint: str | None

    @classmethod
    def from_config(cls, values: Mapping[str, Any]) -> ServerSettings:
        return cls(
            workers=int(values["workers"]),
            shutdown_grace_seconds=float(values["shutdown_grace_seconds"]),
            sse_keepalive_interval=float(values["sse_keepalive_interval"]),
            binding_recheck_interval=float(values["binding_recheck_interval"]),
            function_timeout=float(values["function_timeout"]),
            function_memory_bytes=int(values["function_memory_bytes"]),
            function_workers=int(values["function_workers"]),
            max_relay_hops=int(values["max_relay_hops"]),
            opentelemetry=bool(values["opentelemetry"]),
            otlp_endpoint=values["otlp_endpoint"] or None,
        )


@dataclass(frozen=True)
class SharedState:
    """The ``shared_state`` section: where replicas keep their shared limits, usage and compute slots."""

    redis_url: str | None
    fail_open: bool  # failure_policy "open": serve without limits while the store is unreachable
    key_prefix: str
    lease_seconds: float

    @classmethod
    def from_config(cls, values: Mapping[str, Any]) -> SharedState:
        return cls(
            redis_url=values["redis_url"] or None,
            fail_open=values["failure_policy"] == "open",
            key_prefix=str(values["key_prefix"]),
            lease_seconds=float(values["lease_seconds"]),
        )
