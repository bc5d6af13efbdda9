"""The Kafka access plan: least privilege per principal; AclCommand batches that grant exactly the plan."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from maillage.core.acl import (
    DISPATCHER_PRINCIPAL,
    GATEWAY_PRINCIPAL,
    AclBatch,
    Grant,
    Operation,
    Resource,
    access_plan,
    agency_group,
    batches,
)
from maillage.core.network import load_network
from maillage.core.settings import DEFAULT_NETWORK
from maillage.core.topics import Topics

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
                reader.id == owner.id)


def test_only_the_gateway_writes_delivery_and_audit_topics() -> None:
    written = {TOPICS.audit, *(TOPICS.deliver(a.id) for a in NETWORK.agencies)}
    writers = {g.user for g in PLAN if g.operation is Operation.WRITE and g.name in written}
    assert writers == {GATEWAY_PRINCIPAL}


def test_status_is_written_by_the_gateway_and_the_dispatchers_reports_only() -> None:
    writers = {g.user for g in PLAN if g.operation is Operation.WRITE and g.name == TOPICS.status}
    assert writers == {GATEWAY_PRINCIPAL, DISPATCHER_PRINCIPAL}


def test_an_agency_submits_reads_status_and_uses_only_its_own_group() -> None:
    agency = "refuge-liege"
    assert {(g.operation, g.resource, g.name) for g in PLAN if g.user == agency} == {
        (Operation.WRITE, Resource.TOPIC, "pole1.maillage.submitted"),
        (Operation.WRITE, Resource.TOPIC, "pole1.maillage.dlq"),
        (Operation.READ, Resource.TOPIC, "pole1.maillage.deliver.refuge-liege"),
        (Operation.READ, Resource.TOPIC, "pole1.maillage.status"),
        (Operation.READ, Resource.GROUP, agency_group(TOPICS, agency)),
    }


def test_the_gateway_owns_its_transactional_id_and_group() -> None:
    assert allowed(GATEWAY_PRINCIPAL, Operation.WRITE, Resource.TRANSACTIONAL_ID, "maillage.gateway.1")
    assert allowed(GATEWAY_PRINCIPAL, Operation.READ, Resource.GROUP, "pole1.maillage.gateway")
    assert allowed(GATEWAY_PRINCIPAL, Operation.READ, Resource.TOPIC, TOPICS.submitted)
    assert not any(g.resource is Resource.TRANSACTIONAL_ID for g in PLAN if g.user != GATEWAY_PRINCIPAL)


def test_the_dispatcher_reads_only_the_deliveries_of_the_agencies_it_serves() -> None:
    for agency in NETWORK.agencies:
        assert allowed(DISPATCHER_PRINCIPAL, Operation.READ, Resource.TOPIC, TOPICS.deliver(agency.id)) == (
            agency.id in NETWORK.dispatched)
    assert allowed(DISPATCHER_PRINCIPAL, Operation.WRITE, Resource.TOPIC, TOPICS.submitted)
    assert not any(g.operation is Operation.WRITE and g.name.startswith(f"{TOPICS.prefix}maillage.deliver.")
                   for g in PLAN if g.user == DISPATCHER_PRINCIPAL)


def test_the_demo_network_needs_few_acl_command_runs() -> None:
    # Each run is a JVM start: per agency one, plus the grants shared by all agencies, the gateway's, the
    # monitor's and the dispatcher's, plus one per delivery topic the dispatcher reads beside its agency.
    assert len(batches(PLAN)) <= len(NETWORK.agencies) + 9 + len(NETWORK.dispatched)


def test_a_batch_is_a_command_line_for_acl_command() -> None:
    batch = AclBatch(users=("a", "b"), operation=Operation.READ,
                     resources=((Resource.GROUP, "g"), (Resource.TOPIC, "t")))
    assert batch.arguments() == ["--add", "--operation", "Read", "--allow-principal", "User:a",
                                 "--allow-principal", "User:b", "--group", "g", "--topic", "t"]


grants = st.builds(Grant, user=st.sampled_from(["a", "b", "c", "gateway"]),
                   operation=st.sampled_from(Operation), resource=st.sampled_from(Resource),
                   name=st.sampled_from(["t1", "t2", "g1", "x"]))


@given(st.sets(grants, max_size=30))
def test_batches_grant_exactly_the_plan_and_nothing_more(plan: set[Grant]) -> None:
    granted = [g for batch in batches(plan) for g in batch.grants()]
    assert set(granted) == plan
    assert len(granted) == len(plan)  # no grant made twice: the batches do not overlap
