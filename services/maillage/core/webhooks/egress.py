"""Calls out to partner systems (webhooks): https to public addresses only, checked when a URL is registered
and again at every connect, on the address actually connected to.

A name may resolve to a public address when it is registered and to 127.0.0.1 an hour later (DNS rebinding):
so the HTTP client resolves each name itself, through the injected resolver, checks every address, and
connects to the address it checked (TLS and the Host header still name the host). Non-public destinations are
reached only when the network file allow-lists their (host, port) as written in the URL.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import Iterable
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network
from pathlib import Path
from typing import Protocol

import httpcore
import httpx

from maillage.core.config.network import WebhooksConfig
from maillage.domain.errors import WebhookDestinationRefused

log = logging.getLogger(__name__)

IPAddress = IPv4Address | IPv6Address

NAT64 = ip_network("64:ff9b::/96")  # RFC 6052: the well-known prefix embeds an IPv4 address in its last 32 bits
# Beyond what `ipaddress` knows (its lists vary with the Python version): IETF protocol assignments, of which
# only a few single addresses are globally reachable, and the deprecated 6to4 relay anycast.
SPECIAL_IPV4 = (ip_network("192.0.0.0/24"), ip_network("192.88.99.0/24"))

# What a registrant is told. One message for every address-related reason, so that registering URLs does not
# tell whether a name exists, where it leads, or whether anything listens there.
NOT_HTTPS = "problem.webhook-destination.not-https"
CREDENTIALS = "problem.webhook-destination.credentials"
REFUSED = "problem.webhook-destination.refused"


class Unresolvable(Exception):
    """The resolver has no address for this name."""


class Resolver(Protocol):
    async def resolve(self, host: str) -> list[IPAddress]: ...


class SystemResolver:
    """The machine's resolver (getaddrinfo, off the event loop)."""

    async def resolve(self, host: str) -> list[IPAddress]:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError):
            raise Unresolvable(host) from None
        return list(dict.fromkeys(ip_address(str(info[4][0]).split("%")[0]) for info in infos))


@dataclass
class TableResolver:
    """Names from a table, for tests: an unknown name is refused without any query leaving the machine.
    Mutate `table` to make a name resolve elsewhere later."""

    table: dict[str, list[str]] = field(default_factory=dict)

    async def resolve(self, host: str) -> list[IPAddress]:
        try:
            return [ip_address(a) for a in self.table[normal_host(host)]]
        except KeyError:
            raise Unresolvable(host) from None


def is_public(address: IPAddress) -> bool:
    """Anyone on the Internet reaches the same machine at this address: not loopback, private, link-local,
    shared (100.64/10), benchmarking, documentation, reserved, multicast or unspecified, nor an IPv6 form
    (IPv4-mapped, NAT64, 6to4) that leads to such an IPv4 address."""
    if isinstance(address, IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return is_public(embedded)
    special = (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or (isinstance(address, IPv6Address) and address.is_site_local)
        or any(address in network for network in SPECIAL_IPV4)
    )
    return address.is_global and not special


def _embedded_ipv4(address: IPv6Address) -> IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in NAT64:
        return IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def normal_host(host: str) -> str:
    """One spelling per host: lower case, no IPv6 brackets, no trailing dot, IP literals in canonical form."""
    name = host.strip().lower().removeprefix("[").removesuffix("]").removesuffix(".")
    literal = _literal(name)
    return str(literal) if literal is not None else name


def _literal(host: str) -> IPAddress | None:
    try:
        return ip_address(host)
    except ValueError:
        return None


@dataclass(frozen=True)
class Destination:
    host: str
    port: int

    @classmethod
    def of(cls, host: str, port: int) -> Destination:
        return cls(host=normal_host(host), port=port)

    @classmethod
    def of_url(cls, url: str) -> Destination:
        """The destination of a webhook URL, refused unless it is https and carries no credentials."""
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL:
            raise WebhookDestinationRefused(REFUSED) from None
        if parsed.scheme != "https":
            raise WebhookDestinationRefused(NOT_HTTPS)
        if parsed.userinfo:
            raise WebhookDestinationRefused(CREDENTIALS)
        if not parsed.host:
            raise WebhookDestinationRefused(REFUSED)
        return cls.of(parsed.host, parsed.port or 443)


@dataclass(frozen=True)
class EgressPolicy:
    """Which destinations webhooks may reach, how names resolve, and which CAs their TLS trusts."""

    resolver: Resolver = field(default_factory=SystemResolver)
    allow: frozenset[Destination] = frozenset()
    ca_file: Path | None = None
    public: bool = True

    @classmethod
    def from_network(
        cls, config: WebhooksConfig, *, resolver: Resolver | None = None, also_allow: Iterable[Destination] = ()
    ) -> EgressPolicy:
        allow = {Destination.of(a.host, a.port) for a in config.allow} | set(also_allow)
        return cls(
            resolver=resolver or SystemResolver(), allow=frozenset(allow), ca_file=config.ca_file, public=config.public
        )

    async def check(self, url: str) -> Destination:
        """At registration: the URL is acceptable now (raises WebhookDestinationRefused otherwise)."""
        destination = Destination.of_url(url)
        await self.addresses(destination)
        return destination

    async def addresses(self, destination: Destination) -> list[IPAddress]:
        """Where `destination` may be reached: its addresses if every one is public, or it is allow-listed."""
        if not self.public and destination not in self.allow:
            raise WebhookDestinationRefused(REFUSED)
        literal = _literal(destination.host)
        try:
            found = [literal] if literal is not None else await self.resolver.resolve(destination.host)
        except Unresolvable:
            raise WebhookDestinationRefused(REFUSED) from None
        if found and (destination in self.allow or all(is_public(a) for a in found)):
            return found
        raise WebhookDestinationRefused(REFUSED)

    def ssl_context(self) -> ssl.SSLContext:
        context = httpx.create_ssl_context(trust_env=False)
        if self.ca_file is not None:
            context.load_verify_locations(cafile=self.ca_file)
        return context

    def client(self, *, timeout: float) -> httpx.AsyncClient:
        """An HTTP client that can reach only what this policy accepts; no proxy from the environment (it
        would connect on our behalf, unchecked), no redirects (a 3xx could point anywhere)."""
        return httpx.AsyncClient(
            transport=_GuardedTransport(self), timeout=timeout, follow_redirects=False, trust_env=False
        )


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, resolving and checking each host before connecting to the checked address."""

    def __init__(self, policy: EgressPolicy) -> None:
        self.policy = policy
        self.inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await self.policy.addresses(Destination.of(host, port))
        except WebhookDestinationRefused:
            log.warning("webhook destination refused at connect")  # which one stays out of the logs
            raise httpcore.ConnectError("destination refused by the egress policy") from None
        failure: httpcore.ConnectError | httpcore.ConnectTimeout | None = None
        for address in addresses:
            try:
                return await self.inner.connect_tcp(
                    str(address), port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None  # `addresses` is never empty
        raise failure

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("webhooks do not use unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class _GuardedTransport(httpx.AsyncHTTPTransport):
    def __init__(self, policy: EgressPolicy) -> None:
        context = policy.ssl_context()
        super().__init__(verify=context, trust_env=False)
        # httpx (pinned) takes no network backend: its connection pool is replaced by one that has ours.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=context,
            network_backend=_GuardedBackend(policy),
            max_connections=100,
            max_keepalive_connections=20,
            keepalive_expiry=5.0,
        )
