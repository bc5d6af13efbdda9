"""Anonymous consultations: what never travels in one, and what the Pôle's desk and the asker receive of it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from maillage.domain.disclosure import Disclosure, Recipient, decide
from maillage.domain.events import ConsultationRequested, EventPayload, field_categories, present_categories
from maillage.domain.policy import Policy
from maillage.domain.vocabulary import ALL_CATEGORIES, Category, LegalBasis, Role

# What an agency's API never takes in a consultation, whatever the policy: the parts that say who, where
# or how to reach someone, and a person's reference (it would link the advice to the person's file).
NEVER_ASKED = ("identity", "contact", "location", "subject_ref")


def identifying_fields(data: Mapping[str, Any], *, never: Iterable[str]) -> list[str]:
    """The fields of a consultation's data that would tell who it is about: the parts named in `never`,
    a child's given name, a court case's reference (either finds the person's file in one look-up).
    Field names only: a refusal must never echo the values it refuses."""
    found = [name for name in never if name in data]
    children = data.get("children")
    if isinstance(children, list | tuple):
        found += [
            f"children[{i}].given_name"
            for i, child in enumerate(children)
            if isinstance(child, Mapping) and child.get("given_name") is not None
        ]
    judicial = data.get("judicial")
    if isinstance(judicial, Mapping) and judicial.get("case_reference") is not None:
        found.append("judicial.case_reference")
    return found


def refused_parts(payload: ConsultationRequested, *, policy: Policy) -> list[str]:
    """Why a consultation must be refused whole, as the fields that make it so; empty when it is anonymous.
    The policy's `consultation.never` names the categories; stripping them and delivering the rest would
    hand the desk a consultation its sender believed it could identify (and keep sending so)."""
    never = [
        name
        for name, category in field_categories(ConsultationRequested).items()
        if category in policy.consultation_never
    ]
    return identifying_fields(payload.model_dump(mode="json", exclude_none=True), never=never)


def anonymous_share(
    payload: EventPayload, *, recipient: Recipient, policy: Policy, role: Role, closed_loop: bool = False
) -> Disclosure:
    """The desk's share of a consultation, or the asker's of the answer: no consent is needed (no one is
    identified), the recipient's ceiling still applies. The answer is `closed_loop`: never denied outright."""
    opened: frozenset[Category] = ALL_CATEGORIES - policy.consultation_never
    return decide(
        policy=policy,
        role=role,
        present=present_categories(payload),
        recipient=recipient,
        basis=LegalBasis.ANONYMOUS,
        consented=opened,
        closed_loop=closed_loop,
    )
