"""Binary input items given as URLs (spec: ``data`` may be a URL), turned into base64 before any binding sees them.

``data:`` URLs are always accepted. ``http(s)`` URLs are fetched only from domains the operator lists in
``url_inputs.allowed_domains`` (empty, the default, fetches nothing), and never from an address that is not
public: every name is resolved first, every address it resolves to must be global (no loopback, private,
link-local, metadata, carrier-grade NAT or multicast address, nor an IPv6 form of one), and the connection
goes to the address that was checked, so a second DNS answer cannot redirect it. Redirects are followed by
hand, each hop checked the same way. Each fetch is bounded in time (DNS included) and in bytes.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import logging
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_to_bytes

import anyio
import httpx

from lollms_server.core.domain import InputData
from lollms_server.core.errors import BadRequestError, PayloadTooLargeError

logger = logging.getLogger(__name__)

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
REDIRECT_STATUSES = (301, 302, 303, 307, 308)
# The media family each input type may hold (documents may be anything).
MEDIA_FAMILY = {"image": "image/", "audio": "audio/", "video": "video/"}
MAX_URL_CHARS = 2048


# IPv6 prefixes whose last 32 bits are an IPv4 address: NAT64's well-known prefix, IPv4-compatible (deprecated) and
# SIIT's IPv4-translated addresses. And IPv6 ranges the standard library calls global that are not: site-local
# (deprecated, routed inside a site) and NAT64's local-use prefix (RFC 8215).
_EMBEDDING_IPV4 = tuple(ipaddress.ip_network(prefix) for prefix in ("64:ff9b::/96", "::/96", "::ffff:0:0:0/96"))
_NOT_GLOBAL_IPV6 = tuple(ipaddress.ip_network(prefix) for prefix in ("fec0::/10", "64:ff9b:1::/48"))


def is_public_address(address: IpAddress) -> bool:
    """An address on the public internet: not loopback, private, link-local (cloud metadata), shared (CGNAT),
    reserved or multicast, including IPv4 addresses wrapped in IPv6 (mapped, 6to4, Teredo, NAT64,
    IPv4-compatible, SIIT) and IPv6's site-local and local-use NAT64 ranges."""
    if isinstance(address, ipaddress.IPv6Address):
        if any(address in network for network in _NOT_GLOBAL_IPV6):
            return False
        embedded = address.ipv4_mapped or address.sixtofour or (address.teredo[1] if address.teredo else None)
        if embedded is None and any(address in network for network in _EMBEDDING_IPV4):
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None and not is_public_address(embedded):
            return False
    return address.is_global and not address.is_multicast


@dataclass(frozen=True)
class UrlInputPolicy:
    """The ``url_inputs`` section, with the size cap of ``limits.max_binary_bytes``."""

    allowed_domains: tuple[str, ...] = ()
    timeout_seconds: float = 10.0
    max_redirects: int = 3
    max_urls_per_request: int = 8
    max_bytes: int = 20 * 1024 * 1024

    @classmethod
    def from_config(cls, section: Mapping[str, Any], max_bytes: int) -> UrlInputPolicy:
        return cls(
            allowed_domains=tuple(_host_name(str(domain)) for domain in section.get("allowed_domains") or ()),
            timeout_seconds=float(section.get("timeout_seconds", cls.timeout_seconds)),
            max_redirects=int(section.get("max_redirects", cls.max_redirects)),
            max_urls_per_request=int(section.get("max_urls_per_request", cls.max_urls_per_request)),
            max_bytes=max_bytes,
        )

    def allows_host(self, host: str) -> bool:
        """``example.com`` allows that host only; ``*.example.com`` allows its subdomains (not the domain)."""
        host = _host_name(host)
        for domain in self.allowed_domains:
            if domain.startswith("*."):
                if host.endswith(domain[1:]) and host != domain[2:]:
                    return True
            elif host == domain:
                return True
        return False


def _host_name(host: str) -> str:
    return host.strip().lower().rstrip(".")


@dataclass(frozen=True)
class Fetched:
    data: bytes
    content_type: str | None


Resolver = Callable[[str, int], Any]  # async (host, port) -> list of address strings


async def resolve_addresses(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def data_url_item(item: InputData, where: str) -> InputData:
    """``item`` whose data is a ``data:`` URL (base64 or percent-encoded) as plain base64 with its mime type."""
    header, comma, payload = item.data[len("data:") :].partition(",")
    if not comma:
        raise BadRequestError(f"{where} is a data: URL without the comma between its media type and its data")
    parts = header.split(";")
    if parts[-1].strip().lower() == "base64":
        encoded = payload  # checked where it is decoded (InputData.binary)
    else:
        encoded = base64.b64encode(unquote_to_bytes(payload)).decode("ascii")
    return _typed(item, encoded, parts[0], where)


class UrlInputs:
    """Turns the URL items of a request into base64 items, as the policy allows."""

    def __init__(
        self,
        policy: UrlInputPolicy,
        address_allowed: Callable[[IpAddress], bool] = is_public_address,
        resolver: Resolver = resolve_addresses,
    ) -> None:
        self.policy = policy
        # Tests replace these two to fetch from a loopback server; the server always uses the defaults.
        self.address_allowed = address_allowed
        self.resolver = resolver

    async def resolve(self, items: Sequence[InputData]) -> list[InputData]:
        """``items`` with every binary ``data:`` or ``http(s)`` URL replaced by base64 data and its mime type."""
        if not any(item.type != "text" and _is_url(item.data) for item in items):
            return list(items)
        url_items = [index for index, item in enumerate(items) if item.type != "text" and _is_web_url(item.data)]
        if len(url_items) > self.policy.max_urls_per_request:
            raise BadRequestError(
                f"input_data has {len(url_items)} URLs; the limit is {self.policy.max_urls_per_request} "
                "(url_inputs.max_urls_per_request)"
            )
        resolved = list(items)
        fetched = await asyncio.gather(*(self.fetch(items[index].data, _where(items, index)) for index in url_items))
        for index, result in zip(url_items, fetched, strict=True):
            encoded = await anyio.to_thread.run_sync(base64.b64encode, result.data)
            resolved[index] = _typed(items[index], encoded.decode("ascii"), result.content_type, _where(items, index))
        for index, item in enumerate(resolved):
            if item.type != "text" and item.data[:5].lower() == "data:":
                resolved[index] = data_url_item(item, _where(items, index))
        return resolved

    async def fetch(self, url: str, where: str) -> Fetched:
        """The body of ``url`` after the policy's checks; BadRequestError (or 413) saying what went wrong."""
        if not self.policy.allowed_domains:
            raise BadRequestError(
                f"{where} is a URL, and this server fetches none; send the data as base64 or a data: URL "
                "(an operator can allow domains in url_inputs.allowed_domains)"
            )
        if len(url) > MAX_URL_CHARS:
            raise BadRequestError(f"{where} is a URL of {len(url):,} characters; the limit is {MAX_URL_CHARS}")
        try:
            with anyio.fail_after(self.policy.timeout_seconds):
                return await self._follow(url, where)
        except TimeoutError:
            raise BadRequestError(
                f"{where}: fetching the URL took longer than {self.policy.timeout_seconds:g} s "
                "(url_inputs.timeout_seconds)"
            ) from None

    async def _follow(self, url: str, where: str) -> Fetched:
        timeout = httpx.Timeout(self.policy.timeout_seconds)
        # trust_env=False: a proxy from the environment would connect to names we did not check.
        async with httpx.AsyncClient(timeout=timeout, trust_env=False, follow_redirects=False) as client:
            for _hop in range(self.policy.max_redirects + 1):
                target = await self._checked(url, where)
                request = client.build_request(
                    "GET",
                    target.url.copy_with(host=target.address),
                    headers={"Host": target.url.netloc.decode("ascii"), "Accept": "*/*"},
                    extensions={"sni_hostname": target.url.host},
                )
                try:
                    response = await client.send(request, stream=True)
                except httpx.HTTPError as exc:
                    raise BadRequestError(f"{where}: the URL could not be fetched ({type(exc).__name__})") from None
                try:
                    if response.status_code in REDIRECT_STATUSES and "location" in response.headers:
                        url = str(target.url.join(response.headers["location"]))
                        continue
                    if response.status_code != 200:
                        raise BadRequestError(f"{where}: the URL answered HTTP {response.status_code}")
                    return Fetched(await self._body(response, where), response.headers.get("content-type"))
                finally:
                    await response.aclose()
        raise BadRequestError(
            f"{where}: the URL redirects more than {self.policy.max_redirects} times (url_inputs.max_redirects)"
        )

    async def _checked(self, url: str, where: str) -> _Target:
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, ValueError):
            raise BadRequestError(f"{where} is not a valid URL") from None
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise BadRequestError(f"{where}: only http and https URLs are fetched")
        if parsed.userinfo:
            raise BadRequestError(f"{where}: URLs with a user name or password are not fetched")
        if not self.policy.allows_host(parsed.host):
            raise BadRequestError(
                f"{where}: the domain '{parsed.host}' is not in url_inputs.allowed_domains on this server"
            )
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        try:
            addresses = [
                ipaddress.ip_address(address.split("%")[0]) for address in await self.resolver(parsed.host, port)
            ]
        except (OSError, ValueError):
            raise BadRequestError(f"{where}: the domain '{parsed.host}' does not resolve") from None
        if not addresses:
            raise BadRequestError(f"{where}: the domain '{parsed.host}' does not resolve")
        refused = [address for address in addresses if not self.address_allowed(address)]
        if refused:
            logger.warning("URL input refused: %s resolves to a non-public address %s", parsed.host, refused[0])
            raise BadRequestError(
                f"{where}: the domain '{parsed.host}' resolves to an address that is not public "
                "(loopback, private, link-local or reserved); such URLs are never fetched"
            )
        return _Target(parsed, str(addresses[0]))

    async def _body(self, response: httpx.Response, where: str) -> bytes:
        limit = self.policy.max_bytes
        declared = response.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise _too_large(where, limit)
        body = bytearray()
        async for piece in response.aiter_raw():
            body += piece
            if len(body) > limit:
                raise _too_large(where, limit)
        return bytes(body)


@dataclass(frozen=True)
class _Target:
    url: httpx.URL
    address: str


def _is_web_url(data: str) -> bool:
    return data[:8].lower().startswith(("http://", "https://"))


def _is_url(data: str) -> bool:
    return _is_web_url(data) or data[:5].lower() == "data:"


def _where(items: Sequence[InputData], index: int) -> str:
    return f"input_data[{index}] ({items[index].role})"


def _too_large(where: str, limit: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(f"{where}: the URL's content is over {limit:,} bytes (limits.max_binary_bytes)")


def _typed(item: InputData, encoded: str, media_type: str | None, where: str) -> InputData:
    """``item`` with base64 ``encoded`` data and the media type its source declared, checked against its type."""
    media_type = (media_type or "").split(";")[0].strip().lower() or None
    family = MEDIA_FAMILY.get(item.type)
    if family and media_type and not media_type.startswith(family) and media_type != "application/octet-stream":
        raise BadRequestError(f"{where} is a {item.type} item but its URL holds {media_type}")
    if media_type == "application/octet-stream":
        media_type = None
    return item.model_copy(update={"data": encoded, "mime_type": item.mime_type or media_type})
