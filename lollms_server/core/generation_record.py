"""What one generation did — who asked, where it ran, how long it took to its first output and to its end, the
tokens and outputs it made, whether it failed — handed to the observers that account for it (per-key usage,
metrics) once it ends."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from lollms_server.core.api_keys import Principal, current_principal
from lollms_server.core.domain import OutputData

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class GenerationRecord:
    binding: str
    model: str | None
    task: str
    streamed: bool
    principal: Principal | None = field(default_factory=current_principal.get)
    started: float = field(default_factory=time.perf_counter)
    first_output: float | None = None
    ended: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    outputs: dict[str, int] = field(default_factory=dict)  # by output type
    error: str | None = None  # the exception's class name
    finished: bool = False  # its outputs and usage are known (``finish``)
    reservation: Any = None  # the quotas.Reservation of its tokens, settled by the usage accounting

    @property
    def model_id(self) -> str:
        return f"{self.binding}/{self.model}" if self.model else self.binding

    def output_seen(self) -> None:
        if self.first_output is None:
            self.first_output = time.perf_counter()

    def finish(
        self, outputs: Sequence[OutputData], metadata: Mapping[str, Any] | None, prompt_tokens: int | None
    ) -> None:
        """The usage (from the binding's metadata, else the counted prompt) and the outputs by type."""
        found = (metadata or {}).get("usage") or next(
            ((output.metadata or {}).get("usage") for output in outputs if (output.metadata or {}).get("usage")), None
        )
        usage: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
        self.prompt_tokens = int(usage.get("prompt_tokens") or prompt_tokens or 0)
        self.completion_tokens = int(usage.get("completion_tokens") or 0)
        for output in outputs:
            self.outputs[output.type] = self.outputs.get(output.type, 0) + 1
        self.finished = True


class GenerationObserver(Protocol):
    def observe(self, record: GenerationRecord) -> Awaitable[None] | None:
        """Account for ``record``: at once (return None), or by returning what to await (a network store)."""


async def notify(observers: Sequence[GenerationObserver], record: GenerationRecord) -> None:
    """Every observer sees the record; one that fails is logged, never the request's failure."""
    record.ended = time.perf_counter()
    for observer in observers:
        try:
            pending = observer.observe(record)
            if pending is not None:
                await pending
        except Exception:
            logger.exception("Accounting for a generation on '%s' failed", record.binding)
