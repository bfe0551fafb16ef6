"""Vocabulary-only copies of GGUF models: tokenizer endpoints and the prompt-size check before generation.

The check counts a prompt exactly as generation will — through the same chat handler, so the chat template,
the special tokens and the BOS rule all count — and refuses it when it does not fit the context. A prompt
so long that even its best case cannot fit is refused from its byte length alone, without tokenizing it.
"""

from __future__ import annotations

import ctypes
import threading
from typing import Any

from lollms_server.core.errors import BadRequestError

from .models import describe_metadata


class _FormattedPrompt(Exception):  # noqa: N818 - a control-flow signal, not an error
    """Raised by the counting llama instead of generating: carries the prompt as generation would see it."""

    def __init__(self, prompt: Any) -> None:
        super().__init__("formatted")
        self.prompt = prompt


def _longest_token_bytes(llm: Any) -> int:
    """The most bytes any one token stands for: every token covers at most this much of a text."""
    import llama_cpp

    vocab = llm._model.vocab
    buffer = ctypes.create_string_buffer(256)
    longest = 1
    for token in range(llm.n_vocab()):
        size = llama_cpp.llama_token_to_piece(vocab, token, buffer, 256, 0, True)
        longest = max(longest, abs(int(size)))
    return longest


class Vocabulary:
    """A vocabulary-only llama for one model file: tokenize, detokenize and count prompts (thread-safe)."""

    def __init__(self, model_path: str, chat_format: str | None) -> None:
        from llama_cpp import Llama

        class CountingLlama(Llama):  # type: ignore[misc]
            def create_completion(self, prompt: Any, *args: Any, **kwargs: Any) -> Any:
                raise _FormattedPrompt(prompt)

        # llama-cpp-python creates a context even for a vocabulary: keep it tiny (it is never evaluated).
        self.llm = CountingLlama(
            model_path=model_path, vocab_only=True, chat_format=chat_format, n_ctx=8, n_batch=8, verbose=False
        )
        self.lock = threading.Lock()
        self.metadata = describe_metadata(dict(self.llm.metadata))
        self.longest_token_bytes = _longest_token_bytes(self.llm)

    def tokenize(self, text: str, add_bos: bool, add_eos: bool) -> list[int]:
        with self.lock:
            tokens = list(self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True))
            # Explicit, because llama.cpp adds BOS only for models whose metadata asks for it.
            if add_bos and self.llm.token_bos() >= 0:
                tokens.insert(0, self.llm.token_bos())
            if add_eos:
                tokens.append(self.llm.token_eos())
            return tokens

    def n_vocab(self) -> int:
        return int(self.llm.n_vocab())

    def detokenize(self, tokens: list[int]) -> str:
        with self.lock:
            return bytes(self.llm.detokenize(tokens)).decode("utf-8", errors="replace")

    def count_generation_prompt(
        self, messages: list[dict[str, Any]] | None, prompt: str, options: dict[str, Any]
    ) -> int:
        """Tokens of the prompt a chat (``messages``) or raw completion (``prompt``) will evaluate."""
        with self.lock:
            try:
                if messages is None:
                    self.llm.create_completion(prompt)
                else:
                    self.llm.create_chat_completion(messages=messages, stream=True, **options)
            except _FormattedPrompt as formatted:
                if isinstance(formatted.prompt, list):
                    return len(formatted.prompt)
                text = str(formatted.prompt)
                return len(self.llm.tokenize(text.encode("utf-8"), special=True)) if text else 1
        raise RuntimeError("the chat handler did not reach create_completion")

    def check_fits(
        self,
        model_name: str,
        context_size: int,
        messages: list[dict[str, Any]] | None,
        prompt: str,
        options: dict[str, Any],
    ) -> int:
        """The prompt's token count; BadRequestError when it leaves no room to generate in the context."""
        texts = [str(message.get("content") or "") for message in messages] if messages is not None else [prompt]
        at_least = sum(len(text.encode("utf-8")) for text in texts) // self.longest_token_bytes
        if at_least >= context_size:
            raise BadRequestError(
                f"the prompt is at least {at_least:,} tokens; model '{model_name}' has a context of "
                f"{context_size:,} tokens. Shorten the prompt or the conversation"
            )
        tokens = self.count_generation_prompt(messages, prompt, options)
        if tokens >= context_size:
            raise BadRequestError(
                f"the prompt is {tokens:,} tokens; model '{model_name}' has a context of {context_size:,} tokens "
                "and needs room for at least one generated token. Shorten the prompt or the conversation"
            )
        return tokens

    def check_embedding_input(self, text: str, where: str, limit: int, truncate: bool) -> tuple[str, int]:
        """(text to embed, its tokens): within ``limit`` tokens, truncated when allowed, else BadRequestError."""
        reach = limit * self.longest_token_bytes  # no more than this many characters can fit in ``limit`` tokens
        if len(text) > reach:
            if not truncate:
                raise BadRequestError(f"{where} is over {limit:,} tokens, this model's limit; shorten it")
            text = text[:reach]
        with self.lock:
            tokens = self.llm.tokenize(text.encode("utf-8"), add_bos=True, special=False)
            if len(tokens) <= limit:
                return text, len(tokens)
            if not truncate:
                raise BadRequestError(f"{where} is {len(tokens):,} tokens; this model's limit is {limit:,}")
            bos = 1 if tokens and tokens[0] == self.llm.token_bos() else 0
            kept = bytes(self.llm.detokenize(tokens[bos:limit]))
            return kept.decode("utf-8", errors="ignore"), limit
