"""The grammar builder's process: turns a client's JSON schema into a GBNF grammar and proves llama.cpp can use it.

Run as a script (``python grammar_worker.py <heap MiB>``) by ``grammars.GrammarBuilder``: it bounds its own heap
(RLIMIT_DATA: heap and private mappings, not the model file it maps) before importing llama.cpp, reads one JSON
request per line
on stdin and answers one JSON line on stdout. Building a grammar from a client's schema is client-driven work in
a C library (llama.cpp parses the grammar, then walks its stacks for every candidate token): here a grammar that
crashes it, loops or eats memory kills this process, never the server, and the server kills it at its deadline.

A request: ``{"model": <GGUF path>, "schema": <JSON schema>, "root": <GBNF text or null>}``. With ``root``, the
schema's own root rule is renamed ``schema-root`` and ``root`` (which refers to it) becomes the grammar's root.
The answer: ``{"grammar": <GBNF text>}`` or ``{"error": <what is wrong>}``.

The grammar is proven the way sampling uses it: parsed against the model's vocabulary, then applied to every
token of the vocabulary for a few steps, each time accepting the first token it allows. Only the standard library
and llama-cpp-python are imported (this file is not imported by the server).
"""

from __future__ import annotations

import ctypes
import json
import resource
import sys
from typing import Any

PROOF_STEPS = 8  # tokens accepted by the proof: every rule reached from the root's start is walked at least once
SCHEMA_ROOT = "schema-root"


class Vocabularies:
    """Vocabulary-only llama.cpp models, one per GGUF path, loaded once."""

    def __init__(self) -> None:
        import llama_cpp

        self.llama_cpp = llama_cpp
        llama_cpp.llama_backend_init()
        self._loaded: dict[str, Any] = {}

    def get(self, path: str) -> Any:
        if path not in self._loaded:
            params = self.llama_cpp.llama_model_default_params()
            params.vocab_only = True
            model = self.llama_cpp.llama_model_load_from_file(path.encode(), params)
            if not model:
                raise ValueError(f"cannot read the vocabulary of {path}")
            self._loaded[path] = (model, self.llama_cpp.llama_model_get_vocab(model))
        return self._loaded[path][1]


def grammar_text(schema: Any, root: str | None) -> str:
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    text = json_schema_to_gbnf(json.dumps(schema))
    if root is None:
        return text
    renamed = "\n".join(
        f"{SCHEMA_ROOT} ::=" + line[len("root ::=") :] if line.startswith("root ::=") else line
        for line in text.splitlines()
    )
    return f"{root}\n{renamed}"


def prove(llama_cpp: Any, vocab: Any, text: str) -> None:
    """Parse ``text`` against ``vocab`` and sample a few steps through it; ValueError when llama.cpp refuses it."""
    sampler = llama_cpp.llama_sampler_init_grammar(vocab, text.encode(), b"root")
    if not sampler:
        raise ValueError("llama.cpp cannot parse the grammar built from this schema")
    try:
        size = llama_cpp.llama_vocab_n_tokens(vocab)
        data = (llama_cpp.llama_token_data * size)()
        for _ in range(PROOF_STEPS):
            for token in range(size):
                data[token].id, data[token].logit, data[token].p = token, 0.0, 0.0
            candidates = llama_cpp.llama_token_data_array(data=data, size=size, selected=-1, sorted=False)
            llama_cpp.llama_sampler_apply(sampler, ctypes.byref(candidates))
            allowed = next(
                (
                    data[index].id
                    for index in range(candidates.size)
                    if data[index].logit != float("-inf") and not llama_cpp.llama_vocab_is_eog(vocab, data[index].id)
                ),
                None,
            )
            if allowed is None:  # only the end is allowed: the grammar is complete
                return
            llama_cpp.llama_sampler_accept(sampler, allowed)
    finally:
        llama_cpp.llama_sampler_free(sampler)


def answer(vocabularies: Vocabularies, request: dict[str, Any]) -> dict[str, Any]:
    try:
        text = grammar_text(request["schema"], request.get("root"))
        prove(vocabularies.llama_cpp, vocabularies.get(request["model"]), text)
    except (ValueError, RecursionError, TypeError, KeyError) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"[:500]}
    return {"grammar": text}


def main() -> None:
    limit = int(sys.argv[1]) * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
    vocabularies = Vocabularies()
    sys.stdout.write(json.dumps({"ready": True}) + "\n")
    sys.stdout.flush()
    for line in sys.stdin:
        sys.stdout.write(json.dumps(answer(vocabularies, json.loads(line))) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
