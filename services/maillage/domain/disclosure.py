"""What each recipient may receive: payload ∩ consent ∩ ceiling, or payload ∩ danger rule ∩ ceiling.

Pure functions over plain values; the gateway calls them for every recipient of every event.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from maillage.domain.events import AlertRaised, EventPayload, field_categories, present_categories
from maillage.domain.policy import Policy
from maillage.domain.vocabulary import Category, LegalBasis, Purpose, Role, Sector


@dataclass(frozen=True)
class Grant:
    """One consent a person gave to the agency that obtained it, as the gateway holds it. `disclosers` are the
    agencies it allows to disclose: the one that obtained it always, and the partners the person named."""

    consent_id: str
    obtained_by: str
    categories: frozenset[Category]
    recipients: frozenset[str]
    purposes: frozenset[Purpose]
    valid_until: datetime | None = None
    disclosers: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        object.__setattr__(self, "disclosers", self.disclosers | {self.obtained_by})

    def allows(self, discloser: str) -> bool:
        return discloser in self.disclosers

    def covers(self, *, agency_id: str, sector: Sector, purpose: Purpose, at: datetime) -> bool:
        return (
            (agency_id in self.recipients or sector.value in self.recipients)
            and purpose in self.purposes
            and (self.valid_until is None or at < self.valid_until)
        )


@dataclass(frozen=True)
class Recipient:
    agency_id: str
    sector: Sector


class Outcome(StrEnum):
    DELIVERED = "delivered"
    FILTERED = "filtered"
    DENIED = "denied"


class Removal(StrEnum):
    NOT_CONSENTED = "not_consented"
    ABOVE_CEILING = "above_ceiling"
    OUTSIDE_DANGER_RULE = "outside_danger_rule"


class DenialReason(StrEnum):
    NO_CONSENT = "no_consent"
    NOTHING_PERMITTED = "nothing_permitted"
    # Under a case conference (art. 458ter), see domain/grounds.py.
    UNKNOWN_CONFERENCE = "unknown_conference"
    CONFERENCE_CLOSED = "conference_closed"
    SENDER_NOT_A_PARTICIPANT = "sender_not_a_participant"
    NOT_A_PARTICIPANT = "not_a_participant"
    SUBJECT_NOT_IN_CONFERENCE = "subject_not_in_conference"


@dataclass(frozen=True)
class Disclosure:
    recipient: Recipient
    basis: LegalBasis
    outcome: Outcome
    delivered: frozenset[Category]
    removed: Mapping[Category, Removal] = field(default_factory=dict)
    reason: DenialReason | None = None
    # The consents the delivered categories rested on: who received what under a consent, for its withdrawal.
    consents: frozenset[str] = frozenset()

    @property
    def needs_review(self) -> bool:
        return self.basis is LegalBasis.DANGER and self.outcome is not Outcome.DENIED

    def resting_on(self, consents: frozenset[str]) -> Disclosure:
        """The same decision, resting on `consents` (built directly: one per recipient of every event)."""
        return Disclosure(
            recipient=self.recipient,
            basis=self.basis,
            outcome=self.outcome,
            delivered=self.delivered,
            removed=self.removed,
            reason=self.reason,
            consents=consents,
        )


def consented_categories(
    grants: Iterable[Grant], *, discloser: str, recipient: Recipient, purpose: Purpose, at: datetime
) -> frozenset[Category]:
    """What the consents allowing `discloser` let it disclose to `recipient`.

    A consent is given to the agency that obtained it and allows that agency's disclosures, and those of
    the partners the person named, only: a recipient registering its own "consent" for the same person must
    never unlock what the person refused the sender (GDPR art. 7: consent is specific to the controller it
    was given to)."""
    allowed: frozenset[Category] = frozenset()
    for grant in relied_on(grants, discloser=discloser, recipient=recipient, purpose=purpose, at=at):
        allowed |= grant.categories
    return allowed


def relied_on(
    grants: Iterable[Grant], *, discloser: str, recipient: Recipient, purpose: Purpose, at: datetime
) -> list[Grant]:
    """The consents that allow `discloser` to give `recipient` something, for `purpose`, at `at`."""
    return [
        grant
        for grant in grants
        if grant.allows(discloser)
        and grant.covers(agency_id=recipient.agency_id, sector=recipient.sector, purpose=purpose, at=at)
    ]


def decide(
    *,
    policy: Policy,
    role: Role,
    present: frozenset[Category],
    recipient: Recipient,
    basis: LegalBasis,
    consented: frozenset[Category],
    closed_loop: bool = False,
) -> Disclosure:
    """Decide one recipient's share. `closed_loop` events (answers to a sender) are never denied outright:
    their metadata always travels, only their personal parts are filtered."""
    ceiling = policy.ceiling(recipient.sector, role)
    if basis is LegalBasis.DANGER:
        opened, outside = policy.danger.categories, Removal.OUTSIDE_DANGER_RULE
    else:
        opened, outside = consented, Removal.NOT_CONSENTED
    delivered = present & opened & ceiling
    removed = {c: (outside if c not in opened else Removal.ABOVE_CEILING) for c in present - delivered}
    if delivered == present:
        outcome, reason = Outcome.DELIVERED, None
    elif delivered or closed_loop:
        outcome, reason = Outcome.FILTERED, None
    else:
        no_consent = basis is not LegalBasis.DANGER and not consented
        outcome = Outcome.DENIED
        reason = DenialReason.NO_CONSENT if no_consent else DenialReason.NOTHING_PERMITTED
    return Disclosure(
        recipient=recipient, basis=basis, outcome=outcome, delivered=delivered, removed=removed, reason=reason
    )


def basis_for(*, policy: Policy, requested: LegalBasis, recipient: Recipient, has_children: bool) -> LegalBasis:
    """Under `danger`, only the sectors the rule opens go without consent; the others still need it."""
    if requested is LegalBasis.DANGER and policy.danger.opens(recipient.sector, has_children=has_children):
        return LegalBasis.DANGER
    return LegalBasis.CONSENT


def disclose(
    payload: EventPayload,
    *,
    recipient: Recipient,
    policy: Policy,
    grants: Iterable[Grant],
    sender: str,
    role: Role,
    purpose: Purpose,
    at: datetime,
    requested: LegalBasis,
    closed_loop: bool = False,
) -> Disclosure:
    """One recipient's share of an event `sender` submitted about a person in `role`.

    Only an alert may invoke `danger` (art. 458bis: serious and imminent danger); every other event,
    whatever basis it claims, travels on the consents the sender obtained."""
    present = present_categories(payload)
    basis = LegalBasis.CONSENT
    if isinstance(payload, AlertRaised):
        has_children = Category.CHILDREN in present
        basis = basis_for(policy=policy, requested=requested, recipient=recipient, has_children=has_children)
    relied = relied_on(grants, discloser=sender, recipient=recipient, purpose=purpose, at=at)
    consented = frozenset(c for grant in relied for c in grant.categories)
    decision = decide(
        policy=policy,
        role=role,
        present=present,
        recipient=recipient,
        basis=basis,
        consented=consented,
        closed_loop=closed_loop,
    )
    if decision.basis is not LegalBasis.CONSENT or not decision.delivered:
        return decision
    # Only the consents that opened a category delivered: their withdrawal is what this recipient must hear of.
    return decision.resting_on(frozenset(g.consent_id for g in relied if g.categories & decision.delivered))


class Shares:
    """Each recipient's share of one payload. Never who raised an alert: that reference is for the four-eyes
    review at the raising agency, not for recipients. The payload is dumped once for all its recipients, and
    each share is the dump without the fields of the categories it was not given (the same as `restrict`,
    without a copy of the payload per recipient). Shares hold parts of one dump: write them, do not change them."""

    def __init__(self, payload: EventPayload) -> None:
        self._categories = field_categories(type(payload))
        self._whole = payload.model_dump(mode="json", exclude_none=True, exclude={"raised_by"})

    def of(self, delivered: frozenset[Category]) -> dict[str, Any]:
        withheld = {name for name, category in self._categories.items() if category not in delivered}
        return {name: value for name, value in self._whole.items() if name not in withheld}
