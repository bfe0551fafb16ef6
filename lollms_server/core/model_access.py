"""What the key of the request being served may use: binding instances, their models and personalities.

The one decision behind every refusal (403 naming what the key may not use) and every list shown to a key. It
reads the key from ``current_principal`` (set by the API's key check for every protected route), and the
managers apply it where a name becomes a thing: ``BindingManager.get_binding`` refuses an instance no pattern of
the key can match, ``BindingManager.use`` (``checked_model``) a model, ``PersonalityManager.get`` a personality,
and their lists show only what the key may use. An endpoint cannot reach a binding, a model or a personality
without passing one of them. A key without lists, an ``allowed_api_keys`` entry, and the server's own work (no
key: start-up, health checks, authentication off) may use everything.

Patterns are the key's shell-style ``models`` and ``personalities`` (``Principal.allows_model`` and
``allows_personality`` match them). A name outside them is refused whether or not it exists, and a "not found"
shown to a restricted key never lists what it may not see, so refusals tell nothing about other keys' models.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from lollms_server.core.api_keys import Principal, current_principal
from lollms_server.core.errors import ForbiddenError, NotFoundError
from lollms_server.core.limits import check_name

if TYPE_CHECKING:
    from lollms_server.core.bindings import Binding
    from lollms_server.core.model_residency import ModelResidency

# Where a restricted key is told to look instead of a "not found" listing what exists.
MODEL_LIST_HINT = "GET /v1/models lists the models this key may use"
PERSONALITY_LIST_HINT = "GET /api/v1/list_personalities lists the personalities this key may use"


@dataclass(frozen=True)
class ModelAccess:
    """The lists of one key (``principal``; None: no key, everything allowed)."""

    principal: Principal | None = None

    @classmethod
    def current(cls) -> ModelAccess:
        """The access of the request being served."""
        return cls(current_principal.get())

    @property
    def restricts_models(self) -> bool:
        return self.principal is not None and bool(self.principal.models)

    @property
    def restricts_personalities(self) -> bool:
        return self.principal is not None and bool(self.principal.personalities)

    # --- the decision ---------------------------------------------------------------------------------
    def may_use_model(self, binding: str, model: str | None) -> bool:
        """Whether the key may use ``model`` of the instance ``binding`` (None: the instance as a whole)."""
        return self.principal is None or self.principal.allows_model(binding, model)

    def may_use_instance(self, binding: str) -> bool:
        """Whether some model of the instance ``binding`` may be allowed: a pattern matches its name or a model id
        beginning with ``binding/``. Never False where ``may_use_model`` could be True for one of its models."""
        if self.principal is None or not self.principal.models:
            return True
        return any(_admits_prefix(pattern, binding) for pattern in self.principal.models)

    def may_use_personality(self, personality: str) -> bool:
        return self.principal is None or self.principal.allows_personality(personality)

    # --- refusals -------------------------------------------------------------------------------------
    def check_instance(self, binding: str) -> None:
        if not self.may_use_instance(binding):
            raise ForbiddenError(f"this API key may not use the binding instance '{binding}' ({MODEL_LIST_HINT})")

    def check_model(self, binding: str, model: str | None) -> None:
        if not self.may_use_model(binding, model):
            named = f"{binding}/{model}" if model else binding
            raise ForbiddenError(f"this API key may not use the model '{named}'")

    def check_personality(self, personality: str) -> None:
        if not self.may_use_personality(personality):
            raise ForbiddenError(f"this API key may not use the personality '{personality}'")

    # --- what a key is shown --------------------------------------------------------------------------
    def visible_instances(self, names: Iterable[str]) -> list[str]:
        """The instances of ``names`` this key may see, sorted (what an error message may list)."""
        return sorted(name for name in names if self.may_use_instance(name))

    @staticmethod
    def not_found(error: NotFoundError, what: str, visible: bool, hint: str = MODEL_LIST_HINT) -> NotFoundError:
        """``error`` as a key may read it: unchanged when the key sees everything it could list (``visible``),
        else without the names it lists."""
        return error if visible else NotFoundError(f"{what} not found ({hint})")


def loaded_models(residency: ModelResidency) -> list[dict[str, object]]:
    """The models local bindings hold loaded (``ModelResidency.stats``) that the key of the request may use."""
    access = ModelAccess.current()
    return [
        model
        for model in residency.stats().models
        if access.may_use_model(str(model["instance"]), str(model["model"]) if model["model"] else None)
    ]


async def checked_model(binding_name: str, binding: Binding, requested: str | None) -> str | None:
    """The model ``requested`` resolves to on ``binding`` (None: its default), if the key of the request may use
    it: ForbiddenError otherwise, also for a requested name outside the key's lists that does not exist."""
    check_name("model_name", requested)
    access = ModelAccess.current()
    try:
        model = await binding.resolve_model(requested)
    except NotFoundError as exc:
        access.check_model(binding_name, requested)
        named = f"model '{binding_name}/{requested}'" if requested else f"the default model of '{binding_name}'"
        raise access.not_found(exc, named, access.may_use_model(binding_name, None)) from None
    access.check_model(binding_name, model)
    return model


@lru_cache(maxsize=256)
def _glob_tokens(pattern: str) -> tuple[str | re.Pattern[str], ...]:
    """A shell pattern as fnmatch reads it: "*", "?", a one-character regex for "[...]", else a literal char."""
    tokens: list[str | re.Pattern[str]] = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "[":
            start = index + 1
            start += pattern[start : start + 1] == "!"
            start += pattern[start : start + 1] == "]"
            close = pattern.find("]", start)
            if close != -1:
                tokens.append(re.compile(fnmatch.translate(pattern[index : close + 1])))
                index = close + 1
                continue
        tokens.append(char)
        index += 1
    return tuple(tokens)


def _admits_prefix(pattern: str, binding: str) -> bool:
    """Whether ``pattern`` matches ``binding`` or some ``binding/<model>``: the pattern is run over the prefix
    ``binding/`` as an automaton; a state left before its end means some model name can complete the match."""
    if fnmatch.fnmatchcase(binding, pattern):
        return True
    tokens = _glob_tokens(pattern)

    def closure(states: set[int]) -> set[int]:
        done = set(states)
        for state in sorted(states):
            while state < len(tokens) and tokens[state] == "*":
                state += 1
                done.add(state)
        return done

    states = closure({0})
    for char in f"{binding}/":
        following = set()
        for state in states:
            if state == len(tokens):
                continue
            token = tokens[state]
            if token == "*":
                following.add(state)
            elif token == "?" or token == char or (isinstance(token, re.Pattern) and token.match(char)):
                following.add(state + 1)
        states = closure(following)
    return any(state < len(tokens) for state in states)  # model names are not empty: something must follow
