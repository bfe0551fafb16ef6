"""Stopping llama.cpp inside a decode: a long prompt is read in batches of up to ``n_batch`` tokens, each one call
into C that runs for seconds on a CPU (minutes for a large model). Between tokens the runner stops on its own;
this stops the batch being computed, so a client that leaves frees its compute slot at once.

llama.cpp asks an abort callback between the nodes of its compute graph. A Python callback would take the GIL
hundreds of times per token; the callback here is the C library's ``strlen`` over a two-byte flag: it answers
0 (go on) while the flag is empty and 1 (abort) once it holds one byte, without entering Python. The aborted
decode raises in the worker thread; llama-cpp-python keeps only the batches that completed, and drops the
rest of the cache before its next evaluation, so the context stays consistent.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from typing import Any

_STRLEN = ctypes.cast(ctypes.CDLL(ctypes.util.find_library("c") or None).strlen, ctypes.c_void_p).value


class DecodeInterrupt:
    """The abort flag of one llama.cpp context."""

    def __init__(self, llm: Any) -> None:
        import llama_cpp

        self._flag = ctypes.create_string_buffer(2)  # b"\0\0": go on; b"\1\0": abort
        self._callback = llama_cpp.ggml_abort_callback(_STRLEN)  # kept alive as long as the context
        llama_cpp.llama_set_abort_callback(llm._ctx.ctx, self._callback, ctypes.cast(self._flag, ctypes.c_void_p))

    def arm(self) -> None:
        """Before a completion: let it run."""
        self._flag[0] = b"\0"

    def fire(self) -> None:
        """Abort the decode in progress, and every decode until ``arm``."""
        self._flag[0] = b"\1"

    @property
    def fired(self) -> bool:
        return self._flag[0] != b"\0"
