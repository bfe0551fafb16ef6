"""core.relay on its own: which backend addresses are this server's (from its settings), loops between instances,
and the relay path a request carries in and out."""

from __future__ import annotations

import asyncio

import pytest

from lollms_server.core.errors import BadRequestError, RelayLoopError
from lollms_server.core.relay import (
    RELAY_HEADER,
    RelayGuard,
    instance_loops,
    new_server_id,
    points_here,
    relay_headers,
)


@pytest.mark.parametrize(
    ("url", "host", "public_url", "expected"),
    [
        ("http://127.0.0.1:9601/v1", "127.0.0.1", None, True),
        ("http://localhost:9601/v1", "127.0.0.1", None, True),
        ("http://LOCALHOST:9601", "localhost", None, True),
        ("http://0.0.0.0:9601/v1", "127.0.0.1", None, True),
        ("http://127.0.0.5:9601/v1", "0.0.0.0", None, True),  # every IPv4 address of the machine
        ("http://[::1]:9601/v1", "::", None, True),
        ("http://127.0.0.1:9601/v1", "::", None, True),  # dual stack
        ("http://my-box:9601/v1", "my-box", None, True),
        ("http://127.0.0.1:9602/v1", "127.0.0.1", None, False),  # another port: another server
        ("http://127.0.0.5:9601/v1", "127.0.0.1", None, False),  # an address the server does not listen on
        ("http://[::1]:9601/v1", "127.0.0.1", None, False),
        ("http://[::1]:9601/v1", "0.0.0.0", None, False),  # IPv4 only
        ("http://192.168.1.20:9601/v1", "0.0.0.0", None, False),  # not resolved here: the relay header catches it
        ("https://api.openai.com/v1", "0.0.0.0", None, False),
        ("https://lollms.example.org/gpu/v1", "127.0.0.1", "https://lollms.example.org/gpu/", True),
        ("https://lollms.example.org:443/gpu/v1", "127.0.0.1", "https://lollms.example.org/gpu", True),
        ("https://lollms.example.org/cpu/v1", "127.0.0.1", "https://lollms.example.org/gpu", False),
        ("http://lollms.example.org/gpu/v1", "127.0.0.1", "https://lollms.example.org/gpu", False),
        ("http://127.0.0.1:notaport/v1", "127.0.0.1", None, False),
    ],
)
def test_the_servers_own_addresses(url: str, host: str, public_url: str | None, expected: bool) -> None:
    assert points_here(url, host, 9601, public_url) is expected


def test_instances_that_lead_back_to_themselves() -> None:
    uses = {"a": ["b", "s"], "b": ["a"], "c": ["a", "s"], "d": ["d"], "e": ["f"], "f": ["g"], "g": ["e"], "s": []}
    assert instance_loops(uses) == {
        "a": "a -> b -> a",
        "b": "b -> a -> b",
        "d": "d -> d",
        "e": "e -> f -> g -> e",
        "f": "f -> g -> e -> f",
        "g": "g -> e -> f -> g",
    }
    assert instance_loops({"r": ["unknown", "s"], "s": []}) == {}


def test_a_request_carries_its_path_in_and_out() -> None:
    guard = RelayGuard(new_server_id(), max_hops=3)
    before = [f"{index:016x}" for index in range(1, 3)]
    assert relay_headers() == {}  # outside a server
    passed = guard.passed([f" {before[0]} ,", before[1]])
    token = guard.enter(passed)
    try:
        assert relay_headers() == {RELAY_HEADER: f"{before[0]},{before[1]},{guard.server_id}"}
    finally:
        guard.leave(token)
    assert relay_headers() == {}
    assert guard.passed([]) == ()


def test_a_path_is_refused_when_it_came_back_is_too_long_or_malformed() -> None:
    guard = RelayGuard(new_server_id(), max_hops=3)
    with pytest.raises(RelayLoopError, match="come back"):
        guard.passed([f"{1:016x},{guard.server_id}"])
    with pytest.raises(RelayLoopError, match="max_relay_hops = 3"):
        guard.passed([",".join(f"{index:016x}" for index in range(1, 5))])
    for malformed in ("ABCDEF0123456789", "0123", "x" * 16, "0123456789abcdef;rm"):
        with pytest.raises(BadRequestError, match=RELAY_HEADER):
            guard.passed([malformed])
    with pytest.raises(ValueError):
        RelayGuard("not-an-id", max_hops=3)


async def test_the_path_follows_the_tasks_a_request_starts() -> None:
    guard = RelayGuard(new_server_id(), max_hops=8)

    async def headers_in_a_task() -> dict[str, str]:
        await asyncio.sleep(0)
        return relay_headers()

    token = guard.enter(())
    try:
        started = asyncio.create_task(headers_in_a_task())
    finally:
        guard.leave(token)
    assert relay_headers() == {}
    assert await started == {RELAY_HEADER: guard.server_id}
