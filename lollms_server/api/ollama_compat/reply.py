"""Ollama response objects: streamed pieces, the final 'done' object with its statistics, load replies."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from lollms_server.api.models import OutputData
from lollms_server.api.ollama_compat.translate import ollama_calls
from lollms_server.core.errors import BackendFailedError
from lollms_server.core.tools import FUNCTION_CALL, TOOL_CALLS_FINISH, is_client_call


def timestamp(moment: datetime | None = None) -> str:
    """RFC 3339 in UTC with a Z, as Ollama writes created_at."""
    return (moment or datetime.now(timezone.utc)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class Reply:
    """Builds the objects of one /api/chat (message) or /api/generate (response) answer."""

    model: str
    chat: bool
    show_thinking: bool = True
    started_ns: int = field(default_factory=time.perf_counter_ns)
    first_piece_ns: int | None = None

    def piece(
        self, content: str, thinking: str | None = None, calls: list[dict[str, Any]] | None = None
    ) -> dict[str, Any]:
        thinking = thinking if self.show_thinking and thinking else None
        line: dict[str, Any] = {"model": self.model, "created_at": timestamp()}
        if self.chat:
            message: dict[str, Any] = {"role": "assistant", "content": content}
            if thinking:
                message["thinking"] = thinking
            if calls:
                message["tool_calls"] = ollama_calls(calls)
            line["message"] = message
        else:
            line["response"] = content
            if thinking:
                line["thinking"] = thinking
        line["done"] = False
        return line

    def streamed(self, content: str, thinking: str | None) -> dict[str, Any]:
        """A piece of a stream, which also times the first one (prompt evaluation ends there)."""
        if self.first_piece_ns is None:
            self.first_piece_ns = time.perf_counter_ns()
        return self.piece(content, thinking)

    def done(
        self,
        metadata: Mapping[str, Any],
        content: str = "",
        thinking: str | None = None,
        calls: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """The last object: what is left of the answer, done_reason, durations (ns) and token counts."""
        now = time.perf_counter_ns()
        # Ollama ends an answer with tool calls with done_reason "stop", as any other.
        reason = metadata.get("finish_reason") or "stop"
        line = {
            **self.piece(content, thinking, calls),
            "done": True,
            "done_reason": "stop" if reason == TOOL_CALLS_FINISH else reason,
        }
        line.update(total_duration=now - self.started_ns, load_duration=0)
        if self.first_piece_ns is not None:
            line["prompt_eval_duration"] = self.first_piece_ns - self.started_ns
        # Clients divide eval_count by eval_duration for tokens per second: never zero.
        line["eval_duration"] = max(now - (self.first_piece_ns or self.started_ns), 1)
        usage = metadata.get("usage") or {}
        for ours, theirs in (("prompt_tokens", "prompt_eval_count"), ("completion_tokens", "eval_count")):
            if isinstance(usage.get(ours), int):
                line[theirs] = usage[ours]
        return line

    def complete(self, outputs: list[Any], metadata: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The whole answer (OutputData or their dumps) as one done object; metadata defaults to the text's."""
        answers = [OutputData.model_validate(output) for output in outputs]
        texts = [output for output in answers if output.type == "text"]
        calls = [output.data for output in answers if output.type == FUNCTION_CALL and is_client_call(output.data)]
        errors = [str(output.data) for output in answers if output.type == "error"]
        if errors and not texts and not calls:
            # A personality workflow failed: its error is the answer, with a status clients check.
            raise BackendFailedError("; ".join(errors))
        if metadata is None:
            metadata = next((output.metadata for output in texts if output.metadata), None) or {}
        text = "".join(str(output.data) for output in texts)
        return self.done(metadata, text, "".join(output.thoughts or "" for output in texts) or None, calls)

    def loaded(self, unloaded: bool) -> dict[str, Any]:
        """Ollama's answer to an empty prompt or message list: the model is ready (or released)."""
        return {**self.piece(""), "done": True, "done_reason": "unload" if unloaded else "load"}
