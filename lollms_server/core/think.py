"""Separating ``<think>...</think>`` reasoning from visible text, incrementally (tags may be split anywhere)."""

from __future__ import annotations

OPEN_TAG = "<think>"
CLOSE_TAG = "</think>"
BLOCK_SEPARATOR = "\n\n"


def _partial_tag_suffix(text: str, tag: str) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of ``tag``."""
    for length in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:length]):
            return length
    return 0


class ThinkParser:
    """Feed text pieces; get back (visible, thoughts) pieces. Call ``flush`` at the end of the stream.

    A tag cut across two pieces is held back until it can be decided; an unclosed ``<think>`` at the
    end counts as thoughts.
    """

    def __init__(self) -> None:
        self._in_think = False
        self._pending = ""
        self._blocks = 0

    def feed(self, text: str) -> tuple[str, str]:
        buffer = self._pending + text
        self._pending = ""
        visible: list[str] = []
        thoughts: list[str] = []
        while buffer:
            tag = CLOSE_TAG if self._in_think else OPEN_TAG
            index = buffer.find(tag)
            target = thoughts if self._in_think else visible
            if index >= 0:
                target.append(buffer[:index])
                buffer = buffer[index + len(tag) :]
                self._in_think = not self._in_think
                if self._in_think:
                    if self._blocks:
                        thoughts.append(BLOCK_SEPARATOR)
                    self._blocks += 1
                continue
            keep = _partial_tag_suffix(buffer, tag)
            target.append(buffer[: len(buffer) - keep])
            self._pending = buffer[len(buffer) - keep :]
            break
        return "".join(visible), "".join(thoughts)

    def flush(self) -> tuple[str, str]:
        """Whatever was held back: text of a tag that never completed."""
        pending, self._pending = self._pending, ""
        return ("", pending) if self._in_think else (pending, "")


def split_thoughts(text: str) -> tuple[str, str | None]:
    """(visible text, thoughts or None) of a complete text; several blocks are joined with a blank line."""
    if OPEN_TAG not in text:
        return text, None
    parser = ThinkParser()
    visible, thoughts = parser.feed(text)
    tail_visible, tail_thoughts = parser.flush()
    visible += tail_visible
    thoughts += tail_thoughts
    return visible, (thoughts if thoughts else None)
