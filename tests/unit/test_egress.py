"""Which webhook destinations are reachable: public https addresses in any notation, or what the network file
allow-lists. Names resolve from a table: nothing here touches the network."""

from __future__ import annotations

import tomllib
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network
from pathlib import Path

import pytest
import tomli_w
from hypothesis import given
from hypothesis import strategies as st
from pydantic import AnyHttpUrl, TypeAdapter

from maillage.core.config.network import NetworkError, WebhooksConfig, load_network
from maillage.core.config.settings import DEFAULT_NETWORK
from maillage.core.webhooks.egress import (
    CREDENTIALS,
    NOT_HTTPS,
    REFUSED,
    Destination,
    EgressPolicy,
    TableResolver,
    is_public,
)
from maillage.domain.errors import WebhookDestinationRefused

pytestmark = pytest.mark.unit

NOT_PUBLIC_NETWORKS = [
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "192.88.99.0/24",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "::/128",
    "::1/128",
    "fc00::/7",
    "fe80::/10",
    "ff00::/8",
    "2001:db8::/32",
    "2001::/32",
    "64:ff9b:1::/48",
    "fec0::/10",
]
PUBLIC = ["8.8.8.8", "192.0.43.10", "2606:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"]
URL = TypeAdapter(AnyHttpUrl)


@pytest.mark.parametrize("network", NOT_PUBLIC_NETWORKS)
def test_no_address_of_an_internal_or_special_range_is_public(network: str) -> None:
    net = ip_network(network)
    for address in (net[0], net[1] if net.num_addresses > 1 else net[0], net[-1]):
        assert not is_public(address), address


@pytest.mark.parametrize("address", PUBLIC)
def test_addresses_anyone_on_the_internet_reaches_are_public(address: str) -> None:
    assert is_public(ip_address(address))


@given(st.ip_addresses(v=4))
def test_an_ipv4_address_is_public_in_every_ipv6_disguise_or_in_none(address: IPv4Address) -> None:
    disguises = [
        IPv6Address(f"::ffff:{address}"),
        IPv6Address(int(ip_address("64:ff9b::")) | int(address)),
        IPv6Address((0x2002 << 112) | (int(address) << 80)),
    ]
    assert {is_public(d) for d in disguises} == {is_public(address)}
    if not address.is_global:
        assert not is_public(address)


@given(st.ip_addresses(v=4).filter(lambda a: not a.is_global))
def test_the_ipv4_compatible_form_is_never_public(address: IPv4Address) -> None:
    assert not is_public(IPv6Address(int(address)))


def policy(**table: list[str]) -> EgressPolicy:
    allow = frozenset({Destination.of("127.0.0.1", 8443), Destination.of("receiver.partner.test", 9443)})
    return EgressPolicy(resolver=TableResolver({k.replace("_", "."): v for k, v in table.items()}), allow=allow)


async def refusal(checked: EgressPolicy, url: str) -> str:
    with pytest.raises(WebhookDestinationRefused) as refused:
        await checked.check(url)
    return refused.value.key


@pytest.mark.parametrize(
    "raw",
    [
        "https://2130706433/",
        "https://0x7f.1/",
        "https://127.1/",
        "https://0177.0.0.1/",
        "https://0x7f000001/",
        "https://0/",
        "https://[::ffff:127.0.0.1]/",
        "https://[::127.0.0.1]/",
        "https://%31%32%37.0.0.1/",
        "https://\uff11\uff12\uff17.0.0.1/",
        "https://localhost./",
        "https://LOCALHOST/",
        "https://[::ffff:a9fe:a9fe]/",
    ],
)
async def test_other_notations_of_internal_addresses_are_refused_as_written_and_as_normalised(raw: str) -> None:
    checked = policy(localhost=["127.0.0.1"])
    normalised = str(URL.validate_python(raw))  # what the API stores: pydantic's reading of the URL
    assert await refusal(checked, normalised) == REFUSED
    assert await refusal(checked, raw) == REFUSED  # were it ever stored as written, the client refuses it too


async def test_a_name_is_public_only_if_every_address_it_resolves_to_is() -> None:
    checked = policy(
        partner_test=["192.0.43.10"], mixed_test=["192.0.43.10", "10.0.0.7"], inside_test=["fd12::1"], empty_test=[]
    )
    assert await checked.check("https://partner.test/hook") == Destination(host="partner.test", port=443)
    for url in ("https://mixed.test/", "https://inside.test/", "https://empty.test/", "https://unknown.test/"):
        assert await refusal(checked, url) == REFUSED, url


async def test_the_allow_list_admits_its_host_and_port_as_written_and_nothing_else() -> None:
    checked = policy(receiver_partner_test=["10.0.0.9"], other_test=["127.0.0.1"])
    assert await checked.check("https://127.0.0.1:8443/hook")
    assert await refusal(checked, "https://[::ffff:127.0.0.1]:8443/hook") == REFUSED, "another spelling"
    assert await checked.check("https://receiver.partner.test.:9443/") == Destination("receiver.partner.test", 9443)
    assert await refusal(checked, "https://127.0.0.1:8444/hook") == REFUSED
    assert await refusal(checked, "https://other.test:8443/hook") == REFUSED, "a name leading there is not it"
    assert await refusal(checked, "https://receiver.partner.test/") == REFUSED, "another port"


async def test_cleartext_and_credentials_are_refused_even_when_allow_listed() -> None:
    checked = policy()
    assert await refusal(checked, "http://127.0.0.1:8443/hook") == NOT_HTTPS
    assert await refusal(checked, "https://user:pw@127.0.0.1:8443/hook") == CREDENTIALS
    assert await refusal(checked, "https://token@127.0.0.1:8443/hook") == CREDENTIALS


async def test_a_network_without_public_webhooks_refuses_a_name_without_resolving_it(tmp_path: Path) -> None:
    network = load_network(
        write_network(tmp_path, webhooks={"public": False, "allow": [{"host": "127.0.0.1", "port": 8443}]})
    )
    resolver = TableResolver({"partner.test": ["192.0.43.10"]})
    asked: list[str] = []
    original = resolver.resolve

    async def recording(host: str) -> list[IPv4Address | IPv6Address]:
        asked.append(host)
        return await original(host)

    resolver.resolve = recording  # type: ignore[method-assign]
    checked = EgressPolicy.from_network(network.webhooks, resolver=resolver)
    assert await checked.check("https://127.0.0.1:8443/hook") == Destination("127.0.0.1", 8443)
    for url in ("https://partner.test/hook", "https://192.0.43.10/hook", "https://127.0.0.1:8444/hook"):
        assert await refusal(checked, url) == REFUSED, url
    assert asked == [], "no name was looked up"


def write_network(
    tmp_path: Path, *, webhooks: dict[str, object] | None = None, fallback_url: str | None = None
) -> Path:
    doc = tomllib.loads(DEFAULT_NETWORK.read_text())
    doc["policy"] = str(load_network(DEFAULT_NETWORK).policy)
    if webhooks is not None:
        doc["webhooks"] = webhooks
    if fallback_url is not None:
        doc["oncall"]["zp-meuse"]["fallback_url"] = fallback_url
    path = tmp_path / "network.toml"
    path.write_bytes(tomli_w.dumps(doc).encode())
    return path


def test_the_demo_network_allow_lists_no_webhook_destination() -> None:
    network = load_network(DEFAULT_NETWORK)
    assert network.webhooks == WebhooksConfig()
    assert EgressPolicy.from_network(network.webhooks).allow == frozenset()


def test_the_webhooks_ca_file_is_relative_to_the_network_file(tmp_path: Path) -> None:
    path = write_network(tmp_path, webhooks={"ca_file": "certs/ca.pem", "allow": [{"host": "127.0.0.1", "port": 8443}]})
    network = load_network(path)
    assert network.webhooks.ca_file == (tmp_path / "certs" / "ca.pem").resolve()
    assert EgressPolicy.from_network(network.webhooks).allow == {Destination("127.0.0.1", 8443)}


@pytest.mark.parametrize("url", ["http://pager.example.org/maillage", "https://u:p@pager.example.org/maillage"])
def test_a_fallback_url_in_clear_or_with_credentials_is_refused_when_the_network_loads(
    tmp_path: Path, url: str
) -> None:
    with pytest.raises(NetworkError, match="fallback_url"):
        load_network(write_network(tmp_path, fallback_url=url))
