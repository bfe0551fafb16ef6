"""Inputs given as URLs: data: URLs decoded, http(s) URLs fetched only from allowed domains and public addresses
(after DNS, on every redirect), bounded in bytes and time. A real HTTP server on loopback stands in for the web;
the fetcher is told that its one address counts as public, and every other rule stays the server's own."""

from __future__ import annotations

import asyncio
import base64
import ipaddress
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from lollms_server.core.domain import InputData
from lollms_server.core.errors import BadRequestError, PayloadTooLargeError
from lollms_server.core.url_inputs import UrlInputPolicy, UrlInputs, is_public_address
from tests.server import serving

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
LOOPBACK = ipaddress.ip_address("127.0.0.1")
RELEASE_SLOW = asyncio.Event()  # the slow route waits on it until the test has seen the time cap


async def cat(request: Request) -> Response:
    return Response(PNG, media_type="image/png", headers={"x-host-seen": request.headers["host"]})


async def host_seen(request: Request) -> Response:
    return Response(request.headers["host"].encode(), media_type="image/png")


async def unannounced(request: Request) -> Response:
    """6.4 MB in chunks, no Content-Length: only counting while reading finds it too large."""

    async def body() -> AsyncIterator[bytes]:
        for _ in range(100):
            yield b"\0" * 65536

    return StreamingResponse(body(), media_type="image/png")


async def slow(request: Request) -> Response:
    await RELEASE_SLOW.wait()
    return Response(PNG, media_type="image/png")


def redirect_to(target: str) -> Any:
    async def route(request: Request) -> Response:
        return RedirectResponse(target.format(port=request.url.port), status_code=302)

    return route


WEB = Starlette(
    routes=[
        Route("/cat.png", cat),
        Route("/host", host_seen),
        Route("/page.html", lambda request: Response("<html></html>", media_type="text/html")),
        Route("/declared-big", lambda request: Response(b"\0" * 5000, media_type="image/png")),
        Route("/unannounced", unannounced),
        Route("/slow", slow),
        Route("/missing", lambda request: Response("no", status_code=404)),
        Route("/to-cat", redirect_to("http://images.test:{port}/cat.png")),
        Route("/to-metadata", redirect_to("http://169.254.169.254/latest/meta-data/")),
        Route("/to-metadata-name", redirect_to("http://metadata.images.test:{port}/latest/meta-data/")),
        Route("/to-other-domain", redirect_to("http://elsewhere.test:{port}/cat.png")),
        Route("/loop", redirect_to("http://images.test:{port}/loop")),
    ]
)
NAMES = {
    "images.test": ["127.0.0.1"],
    "cdn.images.test": ["127.0.0.1"],
    "elsewhere.test": ["127.0.0.1"],
    "metadata.images.test": ["169.254.169.254"],
    "mixed.images.test": ["127.0.0.1", "10.0.0.7"],
}


async def test_resolver(host: str, port: int) -> list[str]:
    if host in NAMES:
        return NAMES[host]
    raise OSError("unknown name")


test_resolver.__test__ = False  # type: ignore[attr-defined]


def fetcher(**policy: Any) -> UrlInputs:
    # A generous timeout: the loopback server answers at once, but a loaded machine may take seconds to run it.
    values = {"allowed_domains": ("images.test", "*.images.test"), "timeout_seconds": 60.0, "max_bytes": 4096}
    return UrlInputs(
        UrlInputPolicy(**{**values, **policy}),
        address_allowed=lambda address: address == LOOPBACK,
        resolver=test_resolver,
    )


@asynccontextmanager
async def web() -> AsyncIterator[int]:
    async with serving(WEB) as url:
        yield int(url.rsplit(":", 1)[1])


def image(data: str, **fields: Any) -> InputData:
    return InputData(type="image", role="input_image", data=data, **fields)


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("2606:4700:4700::1111", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),  # cloud metadata
        ("100.64.0.1", False),  # carrier-grade NAT
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("::1", False),
        ("fe80::1", False),
        ("fd00:ec2::254", False),  # AWS metadata over IPv6
        ("::ffff:127.0.0.1", False),
        ("::ffff:169.254.169.254", False),
        ("2002:7f00:1::", False),  # 6to4 around 127.0.0.1
        ("64:ff9b::a00:1", False),  # NAT64 around 10.0.0.1
        ("64:ff9b::a9fe:a9fe", False),  # NAT64 around the cloud metadata address
        ("64:ff9b::808:808", True),  # NAT64 around 8.8.8.8: public
        ("64:ff9b:1::a00:1", False),  # NAT64's local-use prefix
        ("::10.0.0.1", False),  # IPv4-compatible
        ("::127.0.0.1", False),
        ("::ffff:0:a00:1", False),  # SIIT (IPv4-translated) around 10.0.0.1
        ("fec0::1", False),  # site-local
    ],
)
def test_only_public_addresses_are_public(address: str, public: bool) -> None:
    assert is_public_address(ipaddress.ip_address(address)) is public


def test_allowed_domains_match_hosts_and_subdomains_exactly() -> None:
    policy = UrlInputPolicy(allowed_domains=("images.test", "*.cdn.test"))
    assert policy.allows_host("images.test") and policy.allows_host("IMAGES.test.")
    assert policy.allows_host("a.cdn.test") and policy.allows_host("a.b.cdn.test")
    for host in ("cdn.test", "evilimages.test", "images.test.evil", "xcdn.test", "sub.images.test"):
        assert not policy.allows_host(host), host


async def test_data_urls_become_base64_with_their_media_type() -> None:
    inputs = UrlInputs(UrlInputPolicy())
    encoded = base64.b64encode(PNG).decode()
    items = [
        InputData(type="text", role="user_prompt", data="data:text/plain,stays text"),
        image(f"data:image/png;base64,{encoded}"),
        InputData(type="document", role="input_document", data="data:text/plain;charset=utf-8,caf%C3%A9"),
        image(f"DATA:image/png;base64,{encoded}", mime_type="image/png"),
    ]
    resolved = await inputs.resolve(items)
    assert resolved[0] == items[0]
    assert (resolved[1].data, resolved[1].mime_type) == (encoded, "image/png")
    assert base64.b64decode(resolved[2].data) == "café".encode() and resolved[2].mime_type == "text/plain"
    assert resolved[3].binary() == PNG
    with pytest.raises(BadRequestError, match="holds text/html"):
        await inputs.resolve([image("data:text/html,<script>")])
    with pytest.raises(BadRequestError, match="comma"):
        await inputs.resolve([image("data:image/png;base64")])


async def test_without_allowed_domains_no_url_is_fetched() -> None:
    with pytest.raises(BadRequestError, match=r"url_inputs\.allowed_domains"):
        await UrlInputs(UrlInputPolicy()).resolve([image("https://images.test/cat.png")])


async def test_an_allowed_url_is_fetched_from_the_checked_address() -> None:
    async with web() as port:
        resolved = await fetcher().resolve(
            [image(f"http://images.test:{port}/cat.png"), image(f"http://cdn.images.test:{port}/host")]
        )
    assert resolved[0].binary() == PNG and resolved[0].mime_type == "image/png"
    # The connection went to the address that was checked, with the name the client gave as Host.
    assert resolved[1].binary() == f"cdn.images.test:{port}".encode()


@pytest.mark.parametrize(
    ("path", "host", "problem"),
    [
        ("/cat.png", "elsewhere.test", "not in url_inputs.allowed_domains"),
        ("/cat.png", "metadata.images.test", "not public"),
        ("/cat.png", "mixed.images.test", "not public"),  # one private answer is enough to refuse
        ("/cat.png", "unknown.images.test", "does not resolve"),
        ("/to-metadata", "images.test", "not in url_inputs.allowed_domains"),
        ("/to-other-domain", "images.test", "not in url_inputs.allowed_domains"),
        ("/loop", "images.test", "redirects more than 3 times"),
        ("/missing", "images.test", "answered HTTP 404"),
        ("/page.html", "images.test", "holds text/html"),
    ],
)
async def test_refused_urls_say_why(path: str, host: str, problem: str) -> None:
    async with web() as port:
        with pytest.raises(BadRequestError, match=problem):
            await fetcher().resolve([image(f"http://{host}:{port}{path}")])


async def test_redirects_are_followed_when_each_hop_is_allowed() -> None:
    async with web() as port:
        resolved = await fetcher().resolve([image(f"http://images.test:{port}/to-cat")])
    assert resolved[0].binary() == PNG


async def test_a_redirect_to_a_metadata_address_is_refused_before_connecting() -> None:
    """The redirect names an allowed domain that resolves to 169.254.169.254: refused after DNS."""
    async with web() as port:
        with pytest.raises(BadRequestError, match="not public"):
            await fetcher().resolve([image(f"http://images.test:{port}/to-metadata-name")])


async def test_sizes_urls_and_time_are_bounded() -> None:
    async with web() as port:
        with pytest.raises(PayloadTooLargeError, match="max_binary_bytes"):
            await fetcher().resolve([image(f"http://images.test:{port}/declared-big")])
        with pytest.raises(PayloadTooLargeError, match="max_binary_bytes"):
            await fetcher().resolve([image(f"http://images.test:{port}/unannounced")])
        RELEASE_SLOW.clear()
        try:
            with pytest.raises(BadRequestError, match=r"url_inputs\.timeout_seconds"):
                await fetcher(timeout_seconds=0.5).resolve([image(f"http://images.test:{port}/slow")])
        finally:
            RELEASE_SLOW.set()  # lets the server shut down
        with pytest.raises(BadRequestError, match="max_urls_per_request"):
            await fetcher(max_urls_per_request=2).resolve([image(f"http://images.test:{port}/cat.png")] * 3)
    for url, problem in (
        ("http://user:pw@images.test/cat.png", "user name or password"),
        ("https://images.test/" + "a" * 3000, "2048"),
    ):
        with pytest.raises(BadRequestError, match=problem):
            await fetcher().resolve([image(url)])


async def test_real_dns_names_of_loopback_are_refused_by_the_servers_policy() -> None:
    """The server's own fetcher: an allowed name that resolves to loopback is never fetched."""
    async with web() as port:
        inputs = UrlInputs(UrlInputPolicy(allowed_domains=("localhost",)))
        with pytest.raises(BadRequestError, match="not public"):
            await inputs.resolve([image(f"http://localhost:{port}/cat.png")])
