"""Keys across machines: each service holds only its own keys and learns the others' from their JWKS URLs — on a
real broker, each service served by uvicorn on its own port, no key folder shared."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from maillage.agency.app import create_app as create_agency_app
from maillage.agency.settings import AgencySettings
from maillage.cli.kafka_local import free_port
from maillage.core.config.settings import DEFAULT_NETWORK
from maillage.core.crypto.keys import ALL_USES, GATEWAY, KeyDirs, add_keys, ensure_keys, retire_key
from maillage.core.crypto.tokens import Scope, mint
from maillage.core.crypto.trust import Trust
from maillage.core.messaging.envelope import new_subject_ref
from maillage.core.polling import eventually
from maillage.gateway.app import create_app as create_gateway_app
from tests.support import Pole, consent, decided, listening, received, refer

pytestmark = pytest.mark.integration

SENDER, RECIPIENT = "refuge-liege", "cpas-seraing"
REFRESH = 1.0  # seconds: how often each service reloads keys, and how long a JWKS answer is kept
# The recipient's: it learns of the gateway's rotation only from a share signed with the new key, on sight.
RECIPIENT_REFRESH = 300.0


def network_with_jwks(tmp_path: Path, ports: dict[str, int]) -> Path:
    """The demo network, with the gateway and two agencies publishing their keys at their own JWKS URLs."""
    text = DEFAULT_NETWORK.read_text()
    text = text.replace('policy = "policy.toml"', f'policy = "{DEFAULT_NETWORK.parent / "policy.toml"}"', 1)
    url = "http://127.0.0.1:{}/.well-known/jwks.json".format
    text = text.replace("[gateway]\n", f'[gateway]\njwks_url = "{url(ports[GATEWAY])}"\n', 1)
    for owner in (SENDER, RECIPIENT):
        text = text.replace(f'id = "{owner}"\n', f'id = "{owner}"\njwks_url = "{url(ports[owner])}"\n', 1)
    path = tmp_path / "network.toml"
    path.write_text(text)
    return path


def own_keys(tmp_path: Path, owner: str) -> KeyDirs:
    """A machine's key folder: its owner's keys and nobody else's."""
    dirs = KeyDirs(private=tmp_path / owner / "private", public=tmp_path / owner / "public")
    ensure_keys(dirs, {owner: ALL_USES})
    return dirs


async def referred_after_rotating(pole: Pole, keys: KeyDirs, owner: str, url: str, subject: str) -> None:
    """`owner` rotates its keys; once it publishes the new ones and signs with them (its own reload), a referral
    from the sender still reaches the recipient."""
    new_kids = add_keys(keys, owner)

    async def published() -> bool:
        listed = (await pole[SENDER].get(f"{url}/.well-known/jwks.json")).json()["keys"]
        return {k["kid"] for k in listed} >= set(new_kids)

    await eventually(published, what=f"{owner}'s new keys published")
    await asyncio.sleep(REFRESH * 1.5)
    event_id = await refer(pole, SENDER, subject, to=RECIPIENT)
    assert (await decided(pole, SENDER, event_id))["recipients"][0]["outcome"] in {"delivered", "filtered"}
    await received(pole, RECIPIENT, event_id)


def service_settings(pole: Pole, tmp_path: Path, network: Path, keys: KeyDirs, owner: str) -> dict[str, Any]:
    service = "gateway" if owner == GATEWAY else f"agency-{owner}"
    return {
        **pole.common(service),
        "network_file": network,
        "data_dir": tmp_path / owner / "var",
        "key_dir": keys.private,
        "public_key_dir": keys.public,
        "key_refresh_seconds": RECIPIENT_REFRESH if owner == RECIPIENT else REFRESH,
    }


def minted(keys: KeyDirs, owner: str, scopes: tuple[Scope, ...]) -> str:
    return mint(Trust.load(keys, owner).own, subject=f"{owner}-case-system", scopes=scopes)


async def test_an_agency_started_before_the_gateway_fetches_its_keys_when_it_first_seals_to_it(
    pole: Pole, tmp_path: Path
) -> None:
    """Its first event sealed to the gateway fetches the gateway's keys first — in a thread: on the event loop,
    which here serves the gateway too, the fetch would wait for itself until its timeout."""
    ports = {owner: free_port() for owner in (GATEWAY, SENDER, RECIPIENT)}
    network = network_with_jwks(tmp_path, ports)
    keys = {owner: own_keys(tmp_path, owner) for owner in (GATEWAY, SENDER)}
    sender_app = create_agency_app(
        AgencySettings(**service_settings(pole, tmp_path, network, keys[SENDER], SENDER), agency_id=SENDER)
    )
    sender = await pole.stack.enter_async_context(listening(sender_app, port=ports[SENDER]))
    gateway_app = create_gateway_app(
        pole.gateway_settings(**service_settings(pole, tmp_path, network, keys[GATEWAY], GATEWAY))
    )
    await pole.stack.enter_async_context(listening(gateway_app, port=ports[GATEWAY]))
    client = httpx.AsyncClient(
        base_url=sender, headers={"Authorization": f"Bearer {minted(keys[SENDER], SENDER, (Scope.CONSENT_WRITE,))}"}
    )
    pole.clients[SENDER] = await pole.stack.enter_async_context(client)

    await consent(pole, SENDER, new_subject_ref(), to=[RECIPIENT], categories=["identity"])


async def test_agencies_exchange_through_the_gateway_knowing_each_other_only_by_jwks(
    pole: Pole, tmp_path: Path
) -> None:
    ports = {owner: free_port() for owner in (GATEWAY, SENDER, RECIPIENT)}
    network = network_with_jwks(tmp_path, ports)
    keys = {owner: own_keys(tmp_path, owner) for owner in ports}

    def settings(owner: str) -> dict[str, Any]:
        return service_settings(pole, tmp_path, network, keys[owner], owner)

    gateway_app = create_gateway_app(pole.gateway_settings(**settings(GATEWAY)))
    gateway = await pole.stack.enter_async_context(listening(gateway_app, port=ports[GATEWAY]))
    urls = {GATEWAY: gateway}
    for owner in (SENDER, RECIPIENT):
        app = create_agency_app(AgencySettings(**settings(owner), agency_id=owner))
        urls[owner] = await pole.stack.enter_async_context(listening(app, port=ports[owner]))

    def token(
        owner: str, scopes: tuple[Scope, ...] = (Scope.EVENTS_WRITE, Scope.INBOX_READ, Scope.CONSENT_WRITE)
    ) -> str:
        return minted(keys[owner], owner, scopes)

    for owner in (SENDER, RECIPIENT):
        client = httpx.AsyncClient(base_url=urls[owner], headers={"Authorization": f"Bearer {token(owner)}"})
        pole.clients[owner] = await pole.stack.enter_async_context(client)
    assert not (keys[SENDER].public / f"{GATEWAY}.json").exists(), "no key folder is shared"

    subject = new_subject_ref()
    await consent(pole, SENDER, subject, to=[RECIPIENT], categories=["identity", "contact", "narrative"])
    first = await refer(pole, SENDER, subject, to=RECIPIENT)
    [line] = (await decided(pole, SENDER, first))["recipients"]
    assert line["outcome"] in {"delivered", "filtered"}, line
    await received(pole, RECIPIENT, first)

    old_token_kid = Trust.load(keys[SENDER], SENDER).own.token_kid
    old_audit_token = token(SENDER, (Scope.AUDIT_READ,))
    audit = httpx.AsyncClient(base_url=gateway, headers={"Authorization": f"Bearer {old_audit_token}"})
    pole.clients["auditor"] = await pole.stack.enter_async_context(audit)
    assert (await audit.get("/v1/audit/verify")).status_code == 200

    # The sender rotates its keys: its new signing key is used at once, and the gateway fetches it on sight.
    await referred_after_rotating(pole, keys[SENDER], SENDER, urls[SENDER], subject)
    # The gateway rotates its keys: the next share is signed with its new key, which the recipient fetches on
    # sight — off its event loop, which here serves the gateway's JWKS too (on the loop, the fetch would wait for
    # itself until its timeout, and the share would be refused).
    await referred_after_rotating(pole, keys[GATEWAY], GATEWAY, gateway, subject)

    # Its old token key retired: the gateway refuses tokens signed with it within the refresh bound.
    retire_key(keys[SENDER], SENDER, old_token_kid)

    async def refused() -> bool:
        return (await audit.get("/v1/audit/verify")).status_code == 401

    await eventually(refused, timeout=REFRESH * 10, what="the retired key refused at the gateway")
    fresh = token(SENDER, (Scope.AUDIT_READ,))
    answer = await audit.get("/v1/audit/verify", headers={"Authorization": f"Bearer {fresh}"})
    assert answer.status_code == 200, answer.text
