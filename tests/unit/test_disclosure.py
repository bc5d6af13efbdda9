"""The filter as a property: a recipient receives exactly payload ∩ consent ∩ ceiling (or ∩ danger rule)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from maillage.domain.disclosure import (
    DenialReason,
    Disclosure,
    Grant,
    Outcome,
    Recipient,
    Removal,
    Shares,
    basis_for,
    consented_categories,
    decide,
    disclose,
)
from maillage.domain.events import (
    AlertKind,
    AlertRaised,
    Child,
    Contact,
    EventPayload,
    Health,
    Identity,
    Judicial,
    Location,
    ReferralCreated,
    ReferralReason,
    Risk,
    present_categories,
    restrict,
)
from maillage.domain.policy import Policy, parse_policy
from maillage.domain.vocabulary import ALL_CATEGORIES, Category, LegalBasis, Purpose, Role, Sector, Severity

pytestmark = pytest.mark.unit

AT = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
AGENCY_IDS = ("refuge-liege", "praxis-meuse", "zp-meuse")
SENDER = "refuge-liege"
RECIPIENT_TOKENS = (*AGENCY_IDS, *(s.value for s in Sector))

# One realistic value per categorised part; the field of each part is named after its category.
PARTS: dict[Category, object] = {
    Category.IDENTITY: Identity(given_name="Amina", family_name="Testperson"),
    Category.CONTACT: Contact(phone="+32 470 00 00 00"),
    Category.LOCATION: Location(address="Rue du Refuge 1, 4000 Liège", in_shelter=True),
    Category.CHILDREN: (Child(given_name="Noa", birth_year=2019, lives_with_subject=True),),
    Category.RISK: Risk(level="high", factors=("threats",)),
    Category.JUDICIAL: Judicial(protection_order=True),
    Category.HEALTH: Health(notes="Bruises on both arms."),
    Category.NARRATIVE: "Partner threatened her with a knife.",
}

categories = st.frozensets(st.sampled_from(list(Category)))
sectors = st.sampled_from(list(Sector))
roles = st.sampled_from(list(Role))
purposes = st.sampled_from(list(Purpose))
recipients = st.builds(Recipient, agency_id=st.sampled_from(AGENCY_IDS), sector=sectors)

grants = st.builds(
    Grant,
    consent_id=st.uuids().map(str),
    obtained_by=st.sampled_from(AGENCY_IDS),
    categories=categories.filter(bool),
    recipients=st.frozensets(st.sampled_from(RECIPIENT_TOKENS), min_size=1, max_size=4),
    purposes=st.frozensets(purposes, min_size=1),
    valid_until=st.none() | st.integers(-3, 3).map(lambda hours: AT + timedelta(hours=hours)),
    disclosers=st.frozensets(st.sampled_from(AGENCY_IDS), max_size=2),
)


def _toml_list(cats: frozenset[Category], *, star: bool) -> str:
    if star and cats == ALL_CATEGORIES:
        return '["*"]'
    return "[" + ", ".join(f'"{c.value}"' for c in sorted(cats)) + "]"


@st.composite
def policies(draw: st.DrawFn) -> Policy:
    """A random policy, written as a TOML file and read back by the real loader."""
    ceilings = draw(st.dictionaries(st.tuples(sectors, roles), categories))
    star = draw(st.booleans())
    lines = ['version = "generated"']
    for sector in Sector:
        lines.append(f"[ceiling.{sector.value}]")
        lines += [
            f"{role.value} = {_toml_list(cats, star=star)}" for (s, role), cats in ceilings.items() if s is sector
        ]
    danger_sectors = draw(st.frozensets(sectors))
    when_children = draw(st.frozensets(sectors))
    lines += [
        "[danger]",
        "sectors = [" + ", ".join(f'"{s.value}"' for s in sorted(danger_sectors)) + "]",
        "sectors_when_children = [" + ", ".join(f'"{s.value}"' for s in sorted(when_children)) + "]",
        f"categories = {_toml_list(draw(categories), star=star)}",
    ]
    policy = parse_policy("\n".join(lines).encode())
    assert dict(policy.ceilings) == ceilings
    return policy


def referral(parts: frozenset[Category]) -> ReferralCreated:
    return ReferralCreated(
        **{c.value: PARTS[c] for c in parts}, reason=ReferralReason.SHELTER, categories_needed=tuple(sorted(parts))
    )


def alert(parts: frozenset[Category], *, justification: str | None) -> AlertRaised:
    return AlertRaised(
        **{c.value: PARTS[c] for c in parts},
        severity=Severity.IMMINENT,
        kind=AlertKind.THREAT,
        justification=justification,
    )


def allowing(grants: list[Grant], sender: str) -> list[Grant]:
    """The consents that allow `sender` to disclose, restated independently: the agency that obtained one,
    and the partners the person named in it."""
    return [g for g in grants if sender == g.obtained_by or sender in g.disclosers]


def consent_oracle(
    grants: list[Grant], recipient: Recipient, purpose: Purpose, *, sender: str = SENDER
) -> frozenset[Category]:
    """What the person allowed `sender` to give this recipient for this purpose, at AT, restated
    independently: a consent counts for the agencies it allows to disclose only."""
    allowed: set[Category] = set()
    for grant in allowing(grants, sender):
        named = recipient.agency_id in grant.recipients or recipient.sector.value in grant.recipients
        valid = grant.valid_until is None or grant.valid_until > AT
        if named and valid and purpose in grant.purposes:
            allowed |= grant.categories
    return frozenset(allowed)


def delivered_share(
    payload: EventPayload,
    *,
    policy: Policy,
    role: Role,
    recipient: Recipient,
    basis: LegalBasis,
    grants: list[Grant],
    purpose: Purpose,
) -> tuple[Disclosure, EventPayload]:
    consented = consented_categories(grants, discloser=SENDER, recipient=recipient, purpose=purpose, at=AT)
    decision = decide(
        policy=policy,
        role=role,
        present=present_categories(payload),
        recipient=recipient,
        basis=basis,
        consented=consented,
    )
    return decision, restrict(payload, decision.delivered)


def assert_decision_consistent(decision: Disclosure, payload_cats: frozenset[Category]) -> None:
    assert set(decision.removed) == payload_cats - decision.delivered
    if decision.delivered == payload_cats:
        assert decision.outcome is Outcome.DELIVERED
    elif decision.delivered:
        assert decision.outcome is Outcome.FILTERED
    else:
        assert decision.outcome is Outcome.DENIED
        assert decision.reason is not None
    assert decision.needs_review == (decision.basis is LegalBasis.DANGER and decision.outcome is not Outcome.DENIED)


@settings(max_examples=300)
@given(
    policy=policies(),
    role=roles,
    recipient=recipients,
    purpose=purposes,
    grants=st.lists(grants, max_size=4),
    parts=categories,
)
def test_recipient_receives_exactly_payload_and_consent_and_ceiling(
    policy: Policy,
    role: Role,
    recipient: Recipient,
    purpose: Purpose,
    grants: list[Grant],
    parts: frozenset[Category],
) -> None:
    payload = referral(parts)
    decision, share = delivered_share(
        payload, policy=policy, role=role, recipient=recipient, basis=LegalBasis.CONSENT, grants=grants, purpose=purpose
    )

    consented = consent_oracle(grants, recipient, purpose)
    expected = parts & consented & policy.ceiling(recipient.sector, role)
    assert present_categories(share) == expected
    assert isinstance(share, ReferralCreated)
    assert share.categories_needed == payload.categories_needed  # metadata always travels
    assert_decision_consistent(decision, parts)
    for category, why in decision.removed.items():
        assert why is (Removal.NOT_CONSENTED if category not in consented else Removal.ABOVE_CEILING)
    if decision.outcome is Outcome.DENIED:
        why_denied = DenialReason.NOTHING_PERMITTED if consented else DenialReason.NO_CONSENT
        assert decision.reason is why_denied


@settings(max_examples=300)
@given(
    policy=policies(),
    role=roles,
    recipient=recipients,
    purpose=purposes,
    grants=st.lists(grants, max_size=4),
    parts=categories,
    justification=st.sampled_from([None, "He announced he would come back tonight with a weapon."]),
)
def test_danger_alert_receives_exactly_payload_and_danger_rule_and_ceiling(
    policy: Policy,
    role: Role,
    recipient: Recipient,
    purpose: Purpose,
    grants: list[Grant],
    parts: frozenset[Category],
    justification: str | None,
) -> None:
    payload = alert(parts, justification=justification)
    payload_cats = parts | ({Category.NARRATIVE} if justification else frozenset())
    basis = basis_for(
        policy=policy, requested=LegalBasis.DANGER, recipient=recipient, has_children=Category.CHILDREN in parts
    )
    decision, share = delivered_share(
        payload, policy=policy, role=role, recipient=recipient, basis=basis, grants=grants, purpose=purpose
    )

    ceiling = policy.ceiling(recipient.sector, role)
    opened = recipient.sector in policy.danger.sectors or (
        Category.CHILDREN in parts and recipient.sector in policy.danger.sectors_when_children
    )
    if opened:
        assert basis is LegalBasis.DANGER
        expected = payload_cats & policy.danger.categories & ceiling  # consent neither needed nor widening
    else:
        assert basis is LegalBasis.CONSENT
        expected = payload_cats & consent_oracle(grants, recipient, purpose) & ceiling
    assert present_categories(share) == expected
    assert isinstance(share, AlertRaised)
    assert (share.severity, share.kind) == (payload.severity, payload.kind)
    assert_decision_consistent(decision, payload_cats)


@given(parts=categories, allowed=categories)
def test_restrict_removes_every_personal_field_outside_the_allowed_categories(
    parts: frozenset[Category],
    allowed: frozenset[Category],
) -> None:
    share = restrict(referral(parts), allowed).model_dump(mode="json", exclude_none=True)

    assert set(share) - {"categories_needed", "reason"} == {c.value for c in parts & allowed}


@settings(max_examples=200)
@given(
    policy=policies(),
    role=roles,
    recipient=recipients,
    purpose=purposes,
    own=st.lists(grants, max_size=3),
    others=st.lists(grants, max_size=3),
    parts=categories,
)
def test_a_consent_registered_by_another_agency_never_widens_the_senders_disclosure(
    policy: Policy,
    role: Role,
    recipient: Recipient,
    purpose: Purpose,
    own: list[Grant],
    others: list[Grant],
    parts: frozenset[Category],
) -> None:
    mine = [Grant(**{**g.__dict__, "obtained_by": SENDER}) for g in own]
    # What a recipient (or anyone else) registered for the same person, however wide.
    foreign = [
        Grant(
            **{
                **g.__dict__,
                "obtained_by": "zp-meuse",
                "disclosers": frozenset(),
                "categories": ALL_CATEGORIES,
                "recipients": frozenset(RECIPIENT_TOKENS),
                "valid_until": None,
            }
        )
        for g in others
    ]
    payload = referral(parts)

    alone, _ = delivered_share(
        payload, policy=policy, role=role, recipient=recipient, basis=LegalBasis.CONSENT, grants=mine, purpose=purpose
    )
    beside, _ = delivered_share(
        payload,
        policy=policy,
        role=role,
        recipient=recipient,
        basis=LegalBasis.CONSENT,
        grants=mine + foreign,
        purpose=purpose,
    )

    assert beside == alone


@settings(max_examples=300)
@given(
    policy=policies(),
    role=roles,
    recipient=recipients,
    purpose=purposes,
    grants=st.lists(grants, max_size=5),
    parts=categories,
    sender=st.sampled_from(AGENCY_IDS),
)
def test_what_a_sender_discloses_rests_only_on_the_consents_allowing_that_sender(
    policy: Policy,
    role: Role,
    recipient: Recipient,
    purpose: Purpose,
    grants: list[Grant],
    parts: frozenset[Category],
    sender: str,
) -> None:
    """payload ∩ (consents allowing S) ∩ ceiling, for any sender S among registering agencies and named
    partners; and the disclosure names the consents it rested on, which a withdrawal's notice follows."""
    decision = disclose(
        referral(parts),
        recipient=recipient,
        policy=policy,
        grants=grants,
        sender=sender,
        role=role,
        purpose=purpose,
        at=AT,
        requested=LegalBasis.CONSENT,
    )

    expected = (
        parts & consent_oracle(grants, recipient, purpose, sender=sender) & policy.ceiling(recipient.sector, role)
    )
    assert decision.delivered == expected
    allowed = {g.consent_id: g for g in allowing(grants, sender)}
    assert decision.consents <= allowed.keys()
    rested_on = frozenset(c for consent_id in decision.consents for c in allowed[consent_id].categories)
    assert decision.delivered <= rested_on
    if not decision.delivered:
        assert decision.consents == frozenset()


@given(policy=policies(), role=roles, recipient=recipients, grants=st.lists(grants, max_size=4), parts=categories)
def test_only_an_alert_may_invoke_danger(
    policy: Policy, role: Role, recipient: Recipient, grants: list[Grant], parts: frozenset[Category]
) -> None:
    """A referral that claims the danger basis still travels on the consents its sender obtained."""

    def claiming(basis: LegalBasis) -> Disclosure:
        return disclose(
            referral(parts),
            recipient=recipient,
            policy=policy,
            grants=grants,
            sender=SENDER,
            role=role,
            purpose=Purpose.REFERRAL,
            at=AT,
            requested=basis,
        )

    assert claiming(LegalBasis.DANGER) == claiming(LegalBasis.CONSENT)
    assert claiming(LegalBasis.DANGER).basis is LegalBasis.CONSENT


def test_who_raised_an_alert_never_reaches_its_recipients() -> None:
    raised = alert(ALL_CATEGORIES, justification="Threatened with a knife tonight.").model_copy(
        update={"raised_by": "0123456789abcdef"}
    )

    shared = Shares(raised).of(ALL_CATEGORIES)

    assert "raised_by" not in shared
    assert shared["justification"] == "Threatened with a knife tonight."


@given(
    parts=categories,
    deliveries=st.lists(categories, min_size=1, max_size=4),
    justification=st.none() | st.just("Threatened tonight."),
)
def test_each_recipients_share_is_the_payload_restricted_to_what_is_delivered_and_never_who_raised_it(
    parts: frozenset[Category], deliveries: list[frozenset[Category]], justification: str | None
) -> None:
    raised = alert(parts, justification=justification).model_copy(update={"raised_by": "0123456789abcdef"})
    for payload in (referral(parts), raised):
        shares = Shares(payload)  # dumped once, cut for each recipient in turn
        for delivered in deliveries:
            expected = restrict(payload, delivered).model_dump(mode="json", exclude_none=True)
            expected.pop("raised_by", None)

            assert shares.of(delivered) == expected
