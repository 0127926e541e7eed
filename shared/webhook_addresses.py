"""Where a webhook may be delivered: a subscription's URL checked when it is made, and its
host resolved once per attempt with every address checked, so that a name cannot answer a
public address to the check and a private one to the connection (shared/webhooks.py has the
rules a subscriber receives by; shared/webhook_dispatch.py delivers)."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import socket
from collections.abc import Awaitable, Callable, Sequence
from urllib.parse import urlsplit

import httpx

log = logging.getLogger("twinaid.webhooks")


# IPv6 addresses that carry an IPv4 address a translator or a relay turns into a connection to
# it are checked through that IPv4 address: IPv4-mapped (::ffff:a.b.c.d), IPv4-translated
# (::ffff:0:a.b.c.d), IPv4-compatible
# (::a.b.c.d), NAT64's well-known prefix (RFC 6052: 64:ff9b::/96, the last 32 bits), 6to4
# (2002::/16) and Teredo (2001::/32, server and client). The local-use NAT64 prefix (RFC 8215:
# 64:ff9b:1::/48, the IPv4 address where the operator chose) is refused outright.
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")
# a host whose last label is a number (decimal, or hexadecimal with 0x) is an IPv4 address to
# URL parsers (WHATWG URL) and to resolvers (inet_aton), in any of its forms: 2130706433,
# 0x7f000001, 017700000001 and 127.1 are all 127.0.0.1
NUMERIC_LABEL = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$")
HOST_NAME = re.compile(
    r"^[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*\.?$"
)


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries (mapped, NAT64, 6to4, Teredo, compatible)."""
    if ip.ipv4_mapped is not None:
        return [ip.ipv4_mapped]
    if int(ip) >> 32 == 0xFFFF0000:  # IPv4-translated (SIIT, RFC 2765): ::ffff:0:a.b.c.d
        return [ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)]
    if ip in NAT64:
        return [ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)]
    if ip.sixtofour is not None:
        return [ip.sixtofour]
    if ip.teredo is not None:
        return list(ip.teredo)
    if int(ip) >> 32 == 0:  # ::a.b.c.d (:: and ::1 among them)
        return [ipaddress.IPv4Address(int(ip))]
    return []


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in NAT64_LOCAL:
            return False
        inner = _embedded_ipv4(ip)
        if inner:
            return all(v4.is_global and not v4.is_multicast for v4 in inner)
    return ip.is_global and not ip.is_multicast


def _ascii_host(url: str) -> str:
    """The URL's host as it goes on the wire (IDNA, lower case; an IPv6 literal without its
    brackets). Raises ValueError for a URL httpx would not send or a host no resolver takes:
    an IPv6 zone (`%eth0`, meaningful on a link-local address only, which is not public), a
    name over 253 characters or with a label over 63."""
    try:
        host = httpx.URL(url).raw_host.decode("ascii").lower()
    except (httpx.InvalidURL, UnicodeError, ValueError) as exc:
        raise ValueError(f"not a valid URL: {exc}") from None
    if not host:
        raise ValueError("the URL names no host")
    if ":" in host:
        if "%" in host:
            raise ValueError("the URL's IPv6 address may not name a zone (%...)")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"not a valid URL: {host} is not an IPv6 address") from None
        return host
    try:
        host.encode("idna")  # every label 1 to 63 characters
    except UnicodeError:
        raise ValueError(
            "the host name is not valid (a label empty or over 63 characters)"
        ) from None
    if len(host.removesuffix(".")) > 253:
        raise ValueError("the host name is not valid (over 253 characters)")
    if not HOST_NAME.match(host):
        raise ValueError("the host name is not valid (letters, digits, hyphens, dots)")
    return host


def _allowed(host: str, allowed_hosts: Sequence[str]) -> bool:
    """Whether WEBHOOK_ALLOWED_HOSTS lists the host (a name with or without its final dot, in
    any case: `Partner.Internal.` is `partner.internal`)."""
    bare = host.removesuffix(".")
    return any(bare == entry.lower().removesuffix(".") for entry in allowed_hosts)


def _check_numeric(host: str) -> None:
    """Raises ValueError for a host read as an IPv4 address (NUMERIC_LABEL) that is not written
    as four decimal numbers (a.b.c.d), saying which address it denotes and, when that address is
    not public, so."""
    if ":" in host or not NUMERIC_LABEL.match(host.rstrip(".").rsplit(".", 1)[-1]):
        return  # an IPv6 literal, or a name
    try:
        if str(ipaddress.IPv4Address(host)) == host:
            return
    except ValueError:
        pass
    try:
        denoted = socket.inet_ntoa(socket.inet_aton(host.rstrip(".")))
    except OSError:
        raise ValueError(
            f"{host} is not a valid IPv4 address: write one as four decimal numbers (a.b.c.d)"
        ) from None
    rule = "" if _public(denoted) else f", and {denoted} is not a public address"
    raise ValueError(
        f"{host} is the IPv4 address {denoted} written another way{rule}:"
        " write IPv4 addresses as four decimal numbers (a.b.c.d)"
    )


def check_url(url: str, *, allowed_hosts: Sequence[str]) -> str:
    """The URL as given, if a webhook may target it. Raises ValueError saying why not: not a URL
    httpx sends (control characters...), not http(s), no host or one no resolver takes (a label
    over 63 characters, a name over 253, an IPv6 zone...), port 0, an IPv4 address written in
    another form than a.b.c.d (2130706433, 0x7f000001, 127.1), credentials (even empty: `@`) or
    a fragment (even empty: `#`) in it, or - NotPublic - a host that is loopback, private,
    link-local or otherwise not public (an IP literal, IPv4 inside IPv6 among them, or
    `localhost` and its subdomains, with or without a final dot) and not listed in
    WEBHOOK_ALLOWED_HOSTS. Names are resolved at each delivery, and the delivery goes to the
    address checked then (resolve_checked, which checks the URL with this function first)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError as exc:
        raise ValueError(f"not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError("a webhook URL starts with http:// or https://")
    if not parts.hostname:
        raise ValueError("the URL names no host")
    if parts.username is not None or parts.password is not None:
        raise ValueError("the URL may not hold credentials: verify the signature instead")
    if "#" in url:  # a fragment, even an empty one (`#` can stand nowhere else in a URL)
        raise ValueError("the URL may not have a fragment (#...)")
    if parts.port == 0:
        raise ValueError("port 0 is not a port a delivery can be made to")
    host = _ascii_host(url)
    _check_numeric(host)
    if _allowed(host, allowed_hosts) or _allowed(parts.hostname, allowed_hosts):
        return url
    bare = host.removesuffix(".")
    if bare == "localhost" or bare.endswith(".localhost"):
        raise NotPublic(f"{host} is not a public address (WEBHOOK_ALLOWED_HOSTS lists exceptions)")
    try:
        public = _public(host)
    except ValueError:
        return url  # a name: checked when resolved, at each delivery
    if not public:
        raise NotPublic(f"{host} is not a public address (WEBHOOK_ALLOWED_HOSTS lists exceptions)")
    return url


class NotPublic(ValueError):
    """A URL refused for where it leads (a host that is not public), not for its form."""


class Refused(Exception):
    """A delivery that may not be made: `reason` is what its subscriber is told (generic), the
    exception's text what the server logs (names, addresses)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


Resolver = Callable[[str, int], Awaitable[Sequence[str]]]


async def system_resolver(host: str, port: int) -> list[str]:
    """The addresses the system's resolver gives for `host` (IP literals as they are)."""
    found = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(address[0]) for *_, address in found]


async def resolve_checked(
    url: str, *, allowed_hosts: Sequence[str], resolve: Resolver = system_resolver
) -> str:
    """The one address a delivery to `url` connects to: the URL checked as at subscription
    (check_url: a URL stored before a rule refused it is refused now), its host resolved once,
    every address it resolves to public (unless the host is in WEBHOOK_ALLOWED_HOSTS). Raises
    Refused for a host that is not public, ValueError for a URL of another form."""
    try:
        check_url(url, allowed_hosts=allowed_hosts)
    except NotPublic as exc:
        raise Refused("address not allowed", str(exc)) from None
    target = httpx.URL(url)
    host = _ascii_host(url)
    port = target.port or (443 if target.scheme == "https" else 80)
    try:
        addresses = list(await resolve(host, port))
    except OSError as exc:
        raise Refused("name not resolved", f"{host} does not resolve: {exc}") from None
    if not addresses:
        raise Refused("name not resolved", f"{host} resolves to no address")
    if not (_allowed(host, allowed_hosts) or _allowed(target.host, allowed_hosts)):
        for address in addresses:
            if not _public(address):
                raise Refused(
                    "address not allowed", f"{host} resolves to {address}, not a public address"
                )
    return addresses[0].split("%", 1)[0]
