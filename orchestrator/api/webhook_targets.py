"""Where a webhook may point: public http(s) addresses only, unless an operator allows more.

A tenant chooses the URL and can read how each delivery went, so an unchecked URL would let it
make the API's processes call anything they can reach: the cloud metadata service
(``169.254.169.254``), a database on loopback, services on the private network. A target is
refused when its host is, or resolves to, any address that is not globally routable: loopback
(``127/8``, ``::1``), link-local (``169.254/16``, ``fe80::/10``), private (``10/8``,
``172.16/12``, ``192.168/16``, ``fc00::/7``), unspecified (``0.0.0.0``), carrier-grade NAT,
multicast, reserved, and IPv6 forms that embed such an IPv4 address.

``CADRE_WEBHOOK_ALLOW`` (comma-separated host names or CIDRs, e.g. ``hooks.internal,10.2.0.0/16``)
lets an operator allow internal receivers. The check runs at registration and again at every
delivery, and a delivery connects to the very address that was checked (the host name travels in
the Host header and TLS SNI), so a DNS answer that changes in between cannot redirect it.

Every refusal of a host says the same thing, whether the name does not resolve or resolves to an
internal address, so the check itself does not tell a tenant which internal names exist.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass, field
from urllib.parse import urlparse, urlunparse

from orchestrator import config
from orchestrator.errors import InputError

ALLOW_ENV = config.WEBHOOK_ALLOW_ENV

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Allowlist:
    """What the operator allows besides public addresses."""

    hosts: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def from_env(cls) -> Allowlist:
        """``$CADRE_WEBHOOK_ALLOW``: host names and CIDRs (a bare IP is its /32 or /128)."""
        hosts, networks = set(), []
        for item in (entry.lower() for entry in config.webhook_allow()):
            try:
                networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                hosts.add(item.rstrip("."))
        return cls(frozenset(hosts), tuple(networks))

    def allows(self, address: IPAddress) -> bool:
        return is_public(address) or any(address in net for net in self.networks)


@dataclass(frozen=True)
class Target:
    """A checked target: the URL to connect to (the host replaced by the checked address when
    the host is a name) and what to send so the receiver still sees its own name."""

    url: str
    headers: dict[str, str] = field(default_factory=dict)
    extensions: dict[str, bytes] = field(default_factory=dict)


def is_public(address: IPAddress) -> bool:
    """True for a globally routable unicast address (IPv4 inside IPv6 checked as IPv4)."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour or _translated(address)
        if embedded is not None:
            return is_public(embedded)
        if address.teredo is not None:
            return all(is_public(a) for a in address.teredo)
    return address.is_global and not address.is_multicast


TRANSLATED = (
    ipaddress.ip_network("64:ff9b::/96"),  # NAT64, well-known prefix (RFC 6052)
    ipaddress.ip_network("64:ff9b:1::/48"),  # NAT64, local-use prefix (RFC 8215)
    ipaddress.ip_network("::/96"),  # IPv4-compatible (deprecated, still routed by some stacks)
)
"""IPv6 prefixes whose last 32 bits are an IPv4 address a gateway or stack may reach."""


def _translated(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address inside a NAT64 or IPv4-compatible address, else None."""
    if any(address in network for network in TRANSLATED):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def check(url: str, allow: Allowlist | None = None) -> Target:
    """The target to connect to for ``url``; InputError when it is refused."""
    allow = allow if allow is not None else Allowlist.from_env()
    odd = next((i for i, c in enumerate(url) if not "!" <= c <= "~"), None)
    if odd is not None:
        raise InputError(
            f"webhook url {url[:200]!r}: character {odd + 1} is {url[odd]!r}; a URL holds no "
            "spaces, control or non-ASCII characters (percent-encode them)"
        )
    try:
        parsed = urlparse(url)
    except ValueError as err:  # e.g. an unclosed IPv6 bracket: "https://o]"
        raise InputError(f"webhook url {url[:200]!r}: not a URL ({err})") from None
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise InputError(f"webhook url {url!r}: give an absolute http:// or https:// URL")
    host = parsed.hostname.lower().rstrip(".")
    try:
        port = parsed.port if parsed.port is not None else (443 if parsed.scheme == "https" else 80)
    except ValueError:
        port = 0
    if not 1 <= port <= 65535:
        raise InputError(f"webhook url {url!r}: the port is not a number from 1 to 65535")
    if host in allow.hosts:
        return Target(url)  # the operator vouches for this name: connect as usual
    refused = InputError(
        f"webhook url {url!r}: the host must be a public internet address (or a name that "
        "resolves only to public addresses); loopback, private, link-local and other internal "
        f"targets are refused unless an operator allows them with {ALLOW_ENV}"
    )
    addresses = _resolve(host, port)
    if not addresses or not all(allow.allows(a) for a in addresses):
        raise refused
    try:
        ipaddress.ip_address(host)
        return Target(url)  # a literal address: what was checked is what is dialled
    except ValueError:
        pass
    address = addresses[0]
    literal = f"[{address}]" if address.version == 6 else str(address)
    netloc = f"{literal}:{parsed.port}" if parsed.port else literal
    pinned = urlunparse(parsed._replace(netloc=netloc))
    host_header = f"{host}:{parsed.port}" if parsed.port else host
    extensions = {"sni_hostname": host.encode()} if parsed.scheme == "https" else {}
    return Target(pinned, {"host": host_header}, extensions)


def _resolve(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to (a literal is itself); [] when it does not resolve."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return []
    found: list[IPAddress] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if address not in found:
            found.append(address)
    return found
