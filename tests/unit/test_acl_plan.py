"""The Kafka access plan: least privilege per principal; AclCommand batches that grant exactly the plan."""

from __future__ import annotations

import pytest

from maillage.cli.acl import (
    DISPATCHER_PRINCIPAL,
    GATEWAY_PRINCIPAL,
    MONITOR_PRINCIPAL,
    Grant,
    Operation,
    Pattern,
    Resource,
    access_plan,
    agency_group,
)
from maillage.core.config.network import load_network
from maillage.core.config.settings import DEFAULT_NETWORK
from maillage.core.messaging.topics import Topics

pytestmark = pytest.mark.unit

NETWORK = load_network(DEFAULT_NETWORK)
TOPICS = Topics(prefix="pole1.")
PLAN = access_plan(NETWORK, TOPICS, gateway_transactional_id="maillage.gateway.1")


def allowed(user: str, operation: Operation, resource: Resource, name: str) -> bool:
    return Grant(user, operation, resource, name) in PLAN


def test_an_agency_reads_only_its_own_delivery_topic() -> None:
    for reader in NETWORK.agencies:
        for owner in NETWORK.agencies:
            assert allowed(reader.id, Operation.READ, Resource.TOPIC, TOPICS.deliver(owner.id)) == (
                reader.id == owner.id
            )


def test_only_the_gateway_writes_delivery_and_audit_topics() -> None:
    written = {TOPICS.audit, *(TOPICS.deliver(a.id) for a in NETWORK.agencies)}
    writers = {g.user for g in PLAN if g.operation is Operation.WRITE and g.name in written}
    assert writers == {GATEWAY_PRINCIPAL}


def test_an_agencys_statuses_are_written_by_the_gateway_and_read_by_that_agency_and_the_monitor_only() -> None:
    for owner in NETWORK.agencies:
        topic = TOPICS.status(owner.id)
        assert {g.user for g in PLAN if g.operation is Operation.WRITE and g.name == topic} == {GATEWAY_PRINCIPAL}
        assert {g.user for g in PLAN if g.operation is Operation.READ and g.name == topic} == {
            owner.id,
            MONITOR_PRINCIPAL,
        }


def test_only_the_gateway_writes_the_replayable_dead_letters_and_each_writer_has_its_own() -> None:
    assert {g.user for g in PLAN if g.operation is Operation.WRITE and g.name == TOPICS.dlq} == {GATEWAY_PRINCIPAL}
    for writer in [*(a.id for a in NETWORK.agencies), DISPATCHER_PRINCIPAL]:
        topic = TOPICS.dead_letters_of(writer)
        assert {g.user for g in PLAN if g.operation is Operation.WRITE and g.name == topic} == {writer}


def test_an_agency_submits_reads_its_own_status_and_uses_only_its_own_group() -> None:
    agency = "refuge-liege"
    assert {(g.operation, g.resource, g.name) for g in PLAN if g.user == agency} == {
        (Operation.WRITE, Resource.TOPIC, "pole1.maillage.submitted"),
        (Operation.WRITE, Resource.TOPIC, "pole1.maillage.dlq.refuge-liege"),
        (Operation.READ, Resource.TOPIC, "pole1.maillage.deliver.refuge-liege"),
        (Operation.READ, Resource.TOPIC, "pole1.maillage.status.refuge-liege"),
        (Operation.READ, Resource.GROUP, agency_group(TOPICS, agency)),
    }


def test_the_monitor_reads_metadata_and_lag_but_no_delivery() -> None:
    reads = {g.name for g in PLAN if g.user == MONITOR_PRINCIPAL and g.operation is Operation.READ}
    assert not any(TOPICS.deliver(a.id) in reads for a in NETWORK.agencies), "sealed data is none of its business"
    assert TOPICS.audit in reads and TOPICS.oncall in reads
    writes = {g.name for g in PLAN if g.user == MONITOR_PRINCIPAL and g.operation is Operation.WRITE}
    assert writes == {TOPICS.submitted}


def test_the_gateway_owns_its_transactional_ids_and_group() -> None:
    # One transactional id per partition of the submitted topic: `maillage.gateway.1.p0`, `.p1`…
    granted = Grant(
        GATEWAY_PRINCIPAL, Operation.WRITE, Resource.TRANSACTIONAL_ID, "maillage.gateway.1.p", Pattern.PREFIXED
    )
    assert granted in PLAN
    assert allowed(GATEWAY_PRINCIPAL, Operation.READ, Resource.GROUP, "pole1.maillage.gateway")
    assert allowed(GATEWAY_PRINCIPAL, Operation.READ, Resource.TOPIC, TOPICS.submitted)
    assert not any(g.resource is Resource.TRANSACTIONAL_ID for g in PLAN if g.user != GATEWAY_PRINCIPAL)


def test_the_dispatcher_reads_only_the_deliveries_of_the_agencies_it_serves() -> None:
    for agency in NETWORK.agencies:
        assert allowed(DISPATCHER_PRINCIPAL, Operation.READ, Resource.TOPIC, TOPICS.deliver(agency.id)) == (
            agency.id in NETWORK.dispatched
        )
    assert allowed(DISPATCHER_PRINCIPAL, Operation.WRITE, Resource.TOPIC, TOPICS.submitted)
    assert not any(
        g.operation is Operation.WRITE and g.name.startswith(f"{TOPICS.prefix}maillage.deliver.")
        for g in PLAN
        if g.user == DISPATCHER_PRINCIPAL
    )
