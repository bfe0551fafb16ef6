"""router_binding: one instance in front of several backend instances serving the same model.

Each request goes to a healthy backend under its concurrency cap (least busy, or round robin); a backend that
cannot be reached, times out or answers 5xx before the first chunk is rested for ``failure_cooldown`` seconds and
the request goes to the next one. Once a stream has begun, a failure is the request's (nothing is replayed). The
router holds no compute slot of its own: the engines behind it do the work."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from lollms_server.core.bindings import Binding, GenerateResult
from lollms_server.core.errors import (
    BackendError,
    BackendRateLimitError,
    LollmsError,
    NotFoundError,
    QueueTimeoutError,
    UnavailableError,
)

logger = logging.getLogger(__name__)

# Failures that say "this backend, not this request": try another one.
BACKEND_FAILURES = (BackendError, UnavailableError, ConnectionError, TimeoutError, OSError)


class RouterBinding(Binding):
    binding_type_name = "router_binding"
    input_modalities = ("text", "image")
    output_modalities = ("text",)
    tasks = ("ttt",)
    streams = True
    uses_other_instances = True

    def __init__(self, config: dict[str, Any], resource_manager: Any) -> None:
        super().__init__(config, resource_manager)
        self.backends: list[str] = list(config.get("backends") or [])
        self.strategy = str(config.get("strategy") or "least_busy")
        self.cap = int(config.get("max_concurrency_per_backend") or 0)
        self.queue_timeout = float(config.get("queue_timeout") or 60.0)
        self.cooldown = float(config.get("failure_cooldown") or 0.0)
        self.running = {name: 0 for name in self.backends}
        self.served = {name: 0 for name in self.backends}
        self.rested_until = {name: 0.0 for name in self.backends}
        self._turn = itertools.cycle(range(max(1, len(self.backends))))
        self._freed = asyncio.Condition()

    # --- choosing a backend -----------------------------------------------------------------------
    async def _available(self) -> list[tuple[str, Binding]]:
        found = []
        for name in self.backends:
            if self.instance_of is None:
                break
            try:
                found.append((name, await self.instance_of(name)))
            except LollmsError:
                continue  # unavailable or unknown: not a candidate now
        return found

    def _order(self, candidates: list[tuple[str, Binding]]) -> list[tuple[str, Binding]]:
        now = time.monotonic()
        rested = [item for item in candidates if self.rested_until[item[0]] <= now]
        pool = rested or candidates  # every one rested: try them anyway rather than fail
        if self.strategy == "round_robin":
            start = next(self._turn) % len(pool)
            return pool[start:] + pool[:start]
        return sorted(pool, key=lambda item: (self.running[item[0]], self.served[item[0]]))

    async def _attempts(self) -> AsyncIterator[tuple[str, Binding]]:
        """Backends to try in turn, each one reserved (under its cap) while it is tried."""
        candidates = await self._available()
        if not candidates:
            raise UnavailableError(
                f"router '{self.binding_instance_name}': no backend is available ({', '.join(self.backends)})"
            )
        tried: set[str] = set()
        deadline = time.monotonic() + self.queue_timeout
        while True:
            ordered = [item for item in self._order(candidates) if item[0] not in tried]
            if not ordered:
                return
            free = [item for item in ordered if not self.cap or self.running[item[0]] < self.cap]
            if not free:
                async with self._freed:
                    try:
                        await asyncio.wait_for(self._freed.wait(), max(0.0, deadline - time.monotonic()))
                    except asyncio.TimeoutError:
                        raise QueueTimeoutError(
                            f"router '{self.binding_instance_name}': every backend stayed at its cap of {self.cap} "
                            f"for {self.queue_timeout:g}s"
                        ) from None
                continue
            name, binding = free[0]
            tried.add(name)
            self.running[name] += 1
            self.served[name] += 1
            try:
                yield name, binding
            finally:
                self.running[name] -= 1
                async with self._freed:
                    self._freed.notify_all()

    def _failed(self, name: str, exc: BaseException) -> None:
        self.rested_until[name] = time.monotonic() + self.cooldown
        logger.warning("Router '%s': backend '%s' failed (%s); trying the next", self.binding_instance_name, name, exc)

    # --- generation -------------------------------------------------------------------------------
    def _model(self, request_info: dict[str, Any]) -> dict[str, Any]:
        model = request_info.get("model_name") or self.default_model_name
        return {**request_info, "model_name": model}

    async def generate(
        self, prompt: str, params: dict[str, Any], request_info: dict[str, Any], multimodal_data: Any = None
    ) -> GenerateResult:
        last: BaseException | None = None
        async for name, backend in self._attempts():
            try:
                info = self._model(request_info)
                model = await backend.resolve_model(info["model_name"])
                return await backend.generate(prompt, params, {**info, "model_name": model}, multimodal_data)
            except BackendRateLimitError:
                raise  # the backend is up and says so: the client should slow down
            except BACKEND_FAILURES as exc:
                self._failed(name, exc)
                last = exc
        raise UnavailableError(f"router '{self.binding_instance_name}': every backend failed; last: {last}")

    async def generate_stream(
        self, prompt: str, params: dict[str, Any], request_info: dict[str, Any], multimodal_data: Any = None
    ) -> AsyncGenerator[dict[str, Any], None]:
        last: BaseException | None = None
        async for name, backend in self._attempts():
            started = False
            try:
                info = self._model(request_info)
                model = await backend.resolve_model(info["model_name"])
                async for chunk in backend.generate_stream(
                    prompt, params, {**info, "model_name": model}, multimodal_data
                ):
                    started = True
                    yield chunk
                return
            except BackendRateLimitError:
                raise
            except BACKEND_FAILURES as exc:
                if started:  # the client has part of an answer: no replay elsewhere
                    raise
                self._failed(name, exc)
                last = exc
        raise UnavailableError(f"router '{self.binding_instance_name}': every backend failed; last: {last}")

    # --- the rest of the binding contract ----------------------------------------------------------
    async def list_available_models(self) -> list[dict[str, Any]]:
        seen: dict[str, dict[str, Any]] = {}
        for _, backend in await self._available():
            try:
                for model in await backend.list_available_models():
                    seen.setdefault(model["name"], model)
            except LollmsError:
                continue
        return list(seen.values())

    async def resolve_model(self, model_name: str | None) -> str | None:
        return model_name or self.default_model_name  # each backend resolves it when it serves the request

    async def load_model(self, model_name: str) -> bool:
        return True

    async def unload_model(self) -> bool:
        return True

    async def get_model_info(self, model_name: str | None = None) -> dict[str, Any]:
        for _, backend in await self._available():
            return await backend.get_model_info(model_name)
        raise NotFoundError(f"router '{self.binding_instance_name}': no backend is available to describe the model")

    def other_instances(self) -> tuple[str, ...]:
        return tuple(self.backends)

    async def health_check(self) -> tuple[bool, str]:
        if not self.backends:
            return False, "no backends configured (backends: [instance names])"
        available = [name for name, _ in await self._available()]
        if not available:
            return False, f"no backend is available ({', '.join(self.backends)})"
        return True, f"{len(available)} of {len(self.backends)} backends available"

    def routing_state(self) -> dict[str, dict[str, float]]:
        """Per backend: requests running and served, and seconds of rest left (for tests and the status page)."""
        now = time.monotonic()
        return {
            name: {
                "running": self.running[name],
                "served": self.served[name],
                "resting": max(0.0, self.rested_until[name] - now),
            }
            for name in self.backends
        }
