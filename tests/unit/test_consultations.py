"""Anonymous consultations, pure: what tells who a consultation is about, and what the desk may receive of it."""

from __future__ import annotations

import pytest

from maillage.core.config.settings import DEFAULT_NETWORK
from maillage.domain.consultations import NEVER_ASKED, anonymous_share, identifying_fields, refused_parts
from maillage.domain.disclosure import Outcome, Recipient, Removal
from maillage.domain.events import Child, ConsultationQuestion, ConsultationRequested, Contact, Health, Judicial, Risk
from maillage.domain.policy import parse_policy
from maillage.domain.vocabulary import Category, LegalBasis, Role, Sector

pytestmark = pytest.mark.unit

POLICY = parse_policy((DEFAULT_NETWORK.parent / "policy.toml").read_bytes())
DESK = Recipient(agency_id="pole-meuse", sector=Sector.RESOURCE_HUB)
QUESTIONS = (ConsultationQuestion.SEVERITY,)


def test_a_name_an_address_or_a_reference_is_named_never_shown() -> None:
    data = {
        "identity": {"given_name": "Amina"},
        "subject_ref": "s-" + "0" * 32,
        "children": [{"birth_year": 2019}, {"given_name": "Noa"}],
        "judicial": {"protection_order": True, "case_reference": "LI.12"},
        "narrative": "Threatened with a knife.",
    }

    found = identifying_fields(data, never=NEVER_ASKED)

    assert found == ["identity", "subject_ref", "children[1].given_name", "judicial.case_reference"]
    assert identifying_fields({"children": [{"birth_year": 2019}], "risk": {}}, never=NEVER_ASKED) == []


def test_the_policy_never_list_refuses_a_consultation_whole() -> None:
    assert POLICY.consultation_never == {Category.IDENTITY, Category.CONTACT, Category.LOCATION}
    carrying = ConsultationRequested(questions=QUESTIONS, contact=Contact(phone="+32 470"), risk=Risk(level="high"))
    named_child = ConsultationRequested(questions=QUESTIONS, children=(Child(given_name="Noa"),))
    clean = ConsultationRequested(
        questions=QUESTIONS, children=(Child(birth_year=2019),), judicial=Judicial(protection_order=True)
    )

    assert refused_parts(carrying, policy=POLICY) == ["contact"]
    assert refused_parts(named_child, policy=POLICY) == ["children[0].given_name"]
    assert refused_parts(clean, policy=POLICY) == []


def test_the_desk_needs_no_consent_and_its_ceiling_still_applies() -> None:
    payload = ConsultationRequested(
        questions=QUESTIONS, risk=Risk(level="high"), health=Health(notes="Bruises."), narrative="A situation."
    )

    for_a_victim = anonymous_share(payload, recipient=DESK, policy=POLICY, role=Role.VICTIM)
    for_another = anonymous_share(payload, recipient=DESK, policy=POLICY, role=Role.OTHER)

    assert (for_a_victim.basis, for_a_victim.outcome) == (LegalBasis.ANONYMOUS, Outcome.DELIVERED)
    assert for_a_victim.delivered == {Category.RISK, Category.HEALTH, Category.NARRATIVE}
    assert for_another.outcome is Outcome.FILTERED and for_another.removed == {Category.HEALTH: Removal.ABOVE_CEILING}
    assert not for_a_victim.needs_review
