"""What a sender must give for a disclosure on grounds other than consent: a legal obligation's reference and
its one named agency, a case conference's reference."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from maillage.core.config.network import Network
from maillage.domain.errors import GroundsRequired
from maillage.domain.vocabulary import LegalBasis

REFERRAL_BASES = frozenset({LegalBasis.CONSENT, LegalBasis.LEGAL_OBLIGATION, LegalBasis.CASE_CONFERENCE})
ALERT_BASES = REFERRAL_BASES | {LegalBasis.DANGER}


def check_grounds(
    network: Network,
    *,
    basis: LegalBasis,
    allowed: frozenset[LegalBasis],
    recipients: tuple[str, ...],
    legal_reference: str | None,
    conference_id: UUID | None,
) -> dict[str, Any]:
    """The payload's `Grounds` for `basis`, once the request gives what that basis requires."""
    if basis not in allowed:
        bases = ", ".join(sorted(b.value for b in allowed))
        raise GroundsRequired("problem.grounds-required.bases-allowed", bases=bases)
    if basis is LegalBasis.LEGAL_OBLIGATION:
        if legal_reference is None:
            raise GroundsRequired("problem.grounds-required.legal-reference")
        if len(recipients) != 1 or recipients[0] not in network.by_id:
            raise GroundsRequired("problem.grounds-required.one-agency")
        return {"legal_reference": legal_reference}
    if basis is LegalBasis.CASE_CONFERENCE:
        if conference_id is None:
            raise GroundsRequired("problem.grounds-required.conference-id")
        return {"conference_id": conference_id}
    return {}
