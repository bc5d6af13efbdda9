"""The bench's workload: fictional people, the bodies a partner system POSTs, the envelopes an outbox
publishes, and the keys and tokens the services and the load generator use."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from maillage.core.crypto.keys import KeyDirs, ensure_keys
from maillage.core.crypto.tokens import ALL_AGENCY_SCOPES, Scope, mint
from maillage.core.crypto.trust import Trust
from maillage.core.messaging.envelope import Envelope, new_subject_ref
from maillage.core.outbox.relay import BATCH_SIZE as RELAY_BATCH
from maillage.domain.events import ConsentGranted, EventPayload, PersonalData, ReferralCreated, ReferralReason
from maillage.domain.vocabulary import Category, LegalBasis, Purpose, Role
from maillage.gateway.settings import GatewaySettings

# A victim-support association orients a woman to a CPAS: the consent opens five categories; the
# social sector's ceiling then removes her location, and her risk assessment was never consented,
# so every event exercises both kinds of removal and is still delivered.
CONSENTED = (Category.IDENTITY, Category.CONTACT, Category.LOCATION, Category.CHILDREN, Category.NARRATIVE)
NEEDED = (Category.IDENTITY, Category.CONTACT, Category.CHILDREN)

ONCALL_AGENCY = "zp-meuse"
JUSTIFICATION = "He announced he would come to the shelter tonight with a knife."

GIVEN = (
    "Amina",
    "Sophie",
    "Nathalie",
    "Fatima",
    "Julie",
    "Sarah",
    "Marie",
    "Laura",
    "Inès",
    "Chloé",
    "Aïcha",
    "Valérie",
    "Elif",
    "Joëlle",
    "Nadia",
    "Catherine",
)
FAMILY = (
    "Dubois",
    "Lambert",
    "Martin",
    "Peeters",
    "El Amrani",
    "Janssens",
    "Leclercq",
    "Renard",
    "Mertens",
    "Yilmaz",
    "Lejeune",
    "Collard",
    "Bensaïd",
    "Lemaire",
    "Wouters",
    "Dumont",
)
CHILDREN = ("Lucas", "Emma", "Adam", "Louise", "Noah", "Lina", "Yanis", "Alice", "Mohamed", "Olivia")
MUNICIPALITIES = ("Liège", "Seraing", "Herstal", "Flémalle", "Ans", "Namur", "Huy", "Jambes")
STREETS = (
    "rue Saint-Gilles",
    "boulevard de la Sauvenière",
    "rue des Vennes",
    "quai de Rome",
    "rue de Fragnée",
    "avenue de la Closeraie",
    "rue Haute",
    "rue du Pont",
)
FACTORS = (
    "escalating threats",
    "recent separation",
    "access to a weapon",
    "strangulation attempt",
    "stalking",
    "children exposed to violence",
    "financial control",
    "threats to kill",
)
NARRATIVES = (
    "Left the family home after a violent episode; needs financial support and help finding housing.",
    "Staying with her sister for now; her income stopped when she left and she cannot pay the rent.",
    "Wants to start an independent life with the children; asks for help with social benefits.",
    "Was isolated and under financial control for years; has no bank account of her own yet.",
    "Recently moved into a shelter; needs a social worker to follow up on housing and daycare.",
)


@dataclass(frozen=True)
class Subject:
    """One fictional person, with the parts of her file that stay the same from referral to referral."""

    ref: str
    data: dict[str, Any]


def make_subjects(count: int, rng: random.Random) -> list[Subject]:
    return [_subject(rng) for _ in range(count)]


def _subject(rng: random.Random) -> Subject:
    # Drawn in this order so that a seed gives the same people as it always did.
    children = [_child(rng) for _ in range(rng.randint(0, 3))]
    data: dict[str, Any] = {"identity": _identity(rng), "contact": _contact(rng), "location": _location(rng)}
    if children:
        data["children"] = children
    return Subject(ref=new_subject_ref(), data=data)


def _child(rng: random.Random) -> dict[str, Any]:
    return {"given_name": rng.choice(CHILDREN), "birth_year": rng.randint(2010, 2023), "lives_with_subject": True}


def _identity(rng: random.Random) -> dict[str, Any]:
    return {
        "given_name": rng.choice(GIVEN),
        "family_name": rng.choice(FAMILY),
        "birth_date": f"{rng.randint(1965, 2003)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
        "language": rng.choice(("fr", "fr", "nl", "de")),
    }


def _contact(rng: random.Random) -> dict[str, Any]:
    return {
        "phone": f"+32 4{rng.randint(70, 99)} {rng.randint(10, 99)} {rng.randint(10, 99)} {rng.randint(10, 99)}",
        "safe_contact_times": rng.choice(("weekdays 9-12", "after 18h, text first", "mornings")),
    }


def _location(rng: random.Random) -> dict[str, Any]:
    return {
        "address": f"{rng.choice(STREETS)} {rng.randint(1, 200)}",
        "municipality": rng.choice(MUNICIPALITIES),
        "in_shelter": rng.random() < 0.3,
    }


def referral_data(subject: Subject, rng: random.Random) -> dict[str, Any]:
    """A partner system's `data` for one referral: the person's file plus this referral's own parts."""
    return {
        **subject.data,
        "risk": {
            "level": rng.choice(("moderate", "high", "severe")),
            "factors": rng.sample(FACTORS, k=rng.randint(1, 3)),
        },
        "narrative": rng.choice(NARRATIVES),
    }


def referral_body(subject: Subject, rng: random.Random, *, recipient: str) -> dict[str, Any]:
    return {
        "subject_ref": subject.ref,
        "subject_role": Role.VICTIM.value,
        "recipient": recipient,
        "reason": ReferralReason.SHELTER.value,
        "purpose": Purpose.REFERRAL.value,
        "categories_needed": [c.value for c in NEEDED],
        "data": referral_data(subject, rng),
    }


def consent_body(subject: Subject, *, recipient: str) -> dict[str, Any]:
    return {
        "subject_ref": subject.ref,
        "categories": [c.value for c in CONSENTED],
        "recipients": [recipient],
        "purposes": [Purpose.REFERRAL.value],
        "notice_version": "2026-09",
        "notice_language": "fr",
    }


def alert_body(subject: Subject, rng: random.Random) -> dict[str, Any]:
    """A victim-support association's danger alert (art. 458bis) to the police zone; each about a new
    person (a fresh subject_ref), so the dispatcher pages every one rather than grouping them."""
    data = {
        "identity": subject.data["identity"],
        "location": subject.data["location"],
        "risk": {"level": "severe", "factors": rng.sample(FACTORS, k=rng.randint(1, 3))},
    }
    return {
        "subject_ref": new_subject_ref(),
        "subject_role": Role.VICTIM.value,
        "severity": "imminent",
        "kind": "threat",
        "recipients": [ONCALL_AGENCY],
        "legal_basis": LegalBasis.DANGER.value,
        "justification": JUSTIFICATION,
        "data": data,
    }


def _envelope(
    payload: EventPayload, *, sender: Trust, subject_ref: str, role: Role, recipients: tuple[str, ...]
) -> Envelope:
    # Exactly as an agency's outbox keeps it: sealed to the gateway; its relay signs it (`_as_published`).
    return sender.sealed(
        payload,
        subject_ref=subject_ref,
        role=role,
        basis=LegalBasis.CONSENT,
        purpose=Purpose.REFERRAL,
        at=datetime.now(UTC),
        recipients=recipients,
    )


def _as_published(envelopes: list[Envelope], *, sender: Trust) -> list[Envelope]:
    """Signed as the sender's outbox relay signs a backlog: a signature per batch of `RELAY_BATCH` events."""
    batches = (envelopes[at : at + RELAY_BATCH] for at in range(0, len(envelopes), RELAY_BATCH))
    return [e for batch in batches for e in sender.sign_batch(batch)]


def consent_envelopes(subjects: list[Subject], *, sender: Trust, recipient: str) -> list[Envelope]:
    envelopes = [
        _envelope(
            ConsentGranted(
                consent_id=uuid.uuid4(), categories=CONSENTED, recipients=(recipient,), purposes=(Purpose.REFERRAL,)
            ),
            sender=sender,
            subject_ref=s.ref,
            role=Role.OTHER,
            recipients=(),
        )
        for s in subjects
    ]
    return _as_published(envelopes, sender=sender)


def referral_envelopes(
    subjects: list[Subject], count: int, rng: random.Random, *, sender: Trust, recipient: str
) -> list[Envelope]:
    envelopes = [
        _referral_envelope(rng.choice(subjects), rng, sender=sender, recipient=recipient) for _ in range(count)
    ]
    return _as_published(envelopes, sender=sender)


def _referral_envelope(subject: Subject, rng: random.Random, *, sender: Trust, recipient: str) -> Envelope:
    data = PersonalData.model_validate(referral_data(subject, rng))
    payload = ReferralCreated(**data.model_dump(), reason=ReferralReason.SHELTER, categories_needed=NEEDED)
    return _envelope(payload, sender=sender, subject_ref=subject.ref, role=Role.VICTIM, recipients=(recipient,))


def service_keys(settings: GatewaySettings) -> KeyDirs:
    """Every owner's keys, where the services of this run will look for them (as `maillage up` does)."""
    ensure_keys(settings.key_dirs, settings.network.key_owners)
    return settings.key_dirs


def system_token(keys: KeyDirs, agency: str) -> str:
    # The bench plays the sender's case-management system, with the token such a system holds.
    return mint(Trust.load(keys, agency).own, subject="maillage-bench", scopes=ALL_AGENCY_SCOPES)


def worker_tokens(keys: KeyDirs, workers: list[str]) -> list[tuple[str, str]]:
    """(worker, token) for each on-call worker of the police zone, as its sign-in would give them."""
    police = Trust.load(keys, ONCALL_AGENCY).own
    return [(w, mint(police, subject=w, scopes=(Scope.ALERTS_ACK,))) for w in workers]
