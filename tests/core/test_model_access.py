"""The instance-level check of a key's model patterns (``may_use_instance``, which refuses a binding instance
before it is looked up and filters lists of instances) against the model check itself (``allows_model``): it
must admit every instance of which some model is allowed, and nothing else."""

from __future__ import annotations

import fnmatch
import itertools

from lollms_server.core.api_keys import Principal
from lollms_server.core.model_access import ModelAccess

# Every pattern of up to three parts over a small alphabet, with the wildcards and classes fnmatch knows.
PARTS = ["a", "b", "/", "*", "?", "[ab]", "[!a]", "[/]", "["]
PATTERNS = ["".join(parts) for size in (1, 2, 3) for parts in itertools.product(PARTS, repeat=size)]
INSTANCES = ["a", "b", "ab", "ba", "a[", "[a"]
MODELS = ["".join(chars) for size in range(5) for chars in itertools.product("ab/[", repeat=size)]


def test_an_instance_is_admitted_exactly_when_some_model_of_it_is() -> None:
    wrong = []
    for pattern in PATTERNS:
        access = ModelAccess(Principal(name="k", role="user", models=(pattern,)))
        for instance in INSTANCES:
            some_model = access.may_use_model(instance, None) or any(
                access.may_use_model(instance, model) for model in MODELS
            )
            if access.may_use_instance(instance) != some_model:
                wrong.append((pattern, instance, some_model))
    assert wrong == []


def test_names_usual_patterns() -> None:
    access = ModelAccess(Principal(name="k", role="user", models=("ollama/llama3*", "llamacpp", "*/tiny*")))
    assert access.may_use_instance("ollama") and access.may_use_instance("llamacpp")
    assert access.may_use_instance("e5")  # "*/tiny*" allows e5/tiny...
    assert not ModelAccess(Principal(name="k", models=("ollama/*",))).may_use_instance("llamacpp")
    assert not ModelAccess(Principal(name="k", models=("llama",))).may_use_instance("llama2")
    assert ModelAccess(None).may_use_instance("anything") and ModelAccess(Principal(name="k")).may_use_instance("x")
    assert fnmatch.fnmatchcase("e5/tiny-1", "*/tiny*")
