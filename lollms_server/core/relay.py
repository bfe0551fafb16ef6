"""Relay loops: a remote binding whose backend is this server, directly or through other servers, must not send
requests round forever (an openai_binding with this server as base_url once held 1,020 connections to itself).

Every server (every process) has a random id. Each request a binding sends to its backend carries the
``X-Lollms-Relay`` header: the ids of the lollms servers the request that caused it has passed through, this one's
last. A request that arrives with this server's id in that list has come back: it is refused with 508 Loop
Detected, and so is one that has passed through more than ``server.max_relay_hops`` servers. The 508 travels back
as the backend's answer on each server it came through, each naming its instance (``BackendLoopError``): a loop
costs one round, never a hang. Where this server's own address can be known from its settings, an instance that
points at it is refused when it is built (``points_here``).

Outgoing requests read the list from a context variable: the API's middleware sets it for each request it lets
through (the list it came with and this server's id), and the lifespan for the work the server does on its own
(health checks).
"""

from __future__ import annotations

import ipaddress
import re
import secrets
from collections.abc import Iterable, Mapping
from contextvars import ContextVar, Token
from typing import Any
from urllib.parse import urlsplit

from lollms_server.core.errors import BadRequestError, RelayLoopError

RELAY_HEADER = "X-Lollms-Relay"
_SERVER_ID = re.compile(r"[0-9a-f]{16}")
# What the requests sent to backends carry now: "" outside any server (a binding used on its own).
_relay_path: ContextVar[str] = ContextVar("lollms_relay_path", default="")


def new_server_id() -> str:
    """A random id for this server: 64 bits, never derived from its name or address."""
    return secrets.token_hex(8)


def relay_headers() -> dict[str, str]:
    """The header every request to a backend carries (none outside a server)."""
    path = _relay_path.get()
    return {RELAY_HEADER: path} if path else {}


async def add_relay_header(request: Any) -> None:
    """An httpx request hook: ``relay_headers`` on every request of an SDK's client."""
    request.headers.update(relay_headers())


class RelayGuard:
    """This server's id and the longest relay path it accepts; checks incoming paths, sets the outgoing one."""

    def __init__(self, server_id: str, max_hops: int) -> None:
        if not _SERVER_ID.fullmatch(server_id):
            raise ValueError("a server id is 16 lowercase hex digits")
        self.server_id = server_id
        self.max_hops = max_hops

    def passed(self, header_values: Iterable[str]) -> tuple[str, ...]:
        """The servers a request has passed through, from its ``X-Lollms-Relay`` header lines; RelayLoopError when
        it has come back or passed through too many, BadRequestError when the header is not a list of ids."""
        ids = tuple(part.strip() for value in header_values for part in value.split(",") if part.strip())
        if not all(_SERVER_ID.fullmatch(server_id) for server_id in ids):
            raise BadRequestError(
                f"{RELAY_HEADER} must list the ids of the lollms servers a request has passed through (16 hex digits "
                "each, comma-separated); lollms servers set it themselves: leave it out"
            )
        if len(ids) > self.max_hops:
            raise RelayLoopError(
                f"this request has passed through {len(ids)} lollms servers ({RELAY_HEADER}), more than "
                f"server.max_relay_hops = {self.max_hops}: a chain of relays that long is most likely a loop"
            )
        if self.server_id in ids:
            raise RelayLoopError(
                "this request has come back to the lollms server it passed through before: a relay instance (the "
                "base_url or host of a remote binding) leads back to it, directly or through other servers"
            )
        return ids

    def enter(self, passed: tuple[str, ...]) -> Token[str]:
        """From now on in this context, requests to backends say they passed through ``passed`` and this server."""
        return _relay_path.set(",".join((*passed, self.server_id)))

    @staticmethod
    def leave(token: Token[str]) -> None:
        _relay_path.reset(token)


# --- this server's own address, as far as its settings tell ------------------------------------------------------
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _addresses(host: str) -> set[str]:
    """The addresses a connection to ``host`` may reach on this machine (names other than localhost: themselves)."""
    host = host.lower().strip("[]")
    if host == "localhost":
        return {"127.0.0.1", "::1"}
    if host in ("0.0.0.0", ""):  # connecting to the unspecified address reaches this machine
        return {"127.0.0.1"}
    if host == "::":
        return {"::1"}
    return {host}


def _listens_on(bind: str, address: str) -> bool:
    """Whether a server bound to ``bind`` accepts connections made to ``address``."""
    bind = bind.lower().strip("[]")
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address == bind  # a host name: only the very name the server binds
    if bind in ("0.0.0.0", ""):
        return ip.version == 4 and ip.is_loopback
    if bind == "::":  # dual stack: IPv4 and IPv6
        return ip.is_loopback
    return address in _addresses(bind)


def points_here(url: str, host: str, port: int, public_url: str | None) -> bool:
    """Whether ``url`` (a backend's address) is this server's own: under its ``public_url``, or its ``port`` on an
    address it listens on (``host``). Other names of this machine are not resolved here: the relay header catches
    them at the first request."""
    try:
        target = urlsplit(url)
        target_port = target.port or _DEFAULT_PORTS.get(target.scheme)
    except ValueError:
        return False
    if public_url:
        own = urlsplit(public_url)
        own_port = own.port or _DEFAULT_PORTS.get(own.scheme)
        same_origin = (target.scheme, (target.hostname or ""), target_port) == (own.scheme, own.hostname, own_port)
        if same_origin and target.path.startswith(own.path.rstrip("/")):
            return True
    if target_port != port or not target.hostname:
        return False
    return any(_listens_on(host, address) for address in _addresses(target.hostname))


def relay_problem(url: str | None, host: str, port: int, public_url: str | None) -> str | None:
    """Why an instance relaying to ``url`` cannot be used (it is this server); None when it can."""
    if url is None or not points_here(url, host, port, public_url):
        return None
    where = f"server.public_url {public_url} or " if public_url else ""
    return (
        f"its backend address is this server's own ({where}server.host {host}, port {port}): every request would "
        "come back here; point it at another server"
    )


# --- loops between the instances of this server (a router whose backends lead back to it) ------------------------
def instance_loops(uses: Mapping[str, Iterable[str]]) -> dict[str, str]:
    """The instances that lead back to themselves through the ones they use (``uses``: name -> the names it sends
    requests to), each with the way round ("a -> b -> a")."""
    loops: dict[str, str] = {}
    for start in uses:
        trail = [start]
        stack = [(start, iter(uses.get(start, ())))]
        seen = {start}
        while stack:
            _, nexts = stack[-1]
            following = next(nexts, None)
            if following is None:
                stack.pop()
                trail.pop()
            elif following == start:
                loops[start] = " -> ".join((*trail, start))
                break
            elif following not in seen and following in uses:
                seen.add(following)
                trail.append(following)
                stack.append((following, iter(uses[following])))
    return loops
