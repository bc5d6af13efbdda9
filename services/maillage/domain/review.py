"""The four-eyes rule: who may review a disclosure made without consent under the danger basis."""

from __future__ import annotations


def may_review(*, reviewer: str, reviewer_agency: str, raised_by: str | None, raising_agency: str) -> bool:
    """Whether `reviewer` (a pseudonymous staff reference, issued by `reviewer_agency`) may approve or reject
    the disclosures of an alert raised by `raised_by` at `raising_agency`.

    Penal Code art. 458bis lets a professional bound by secrecy (art. 458) disclose without consent only
    when they judge a danger serious and imminent. That judgement breaks a person's secrecy on one
    person's word, so a second professional weighs it — and only the raising agency holds the
    justification, so the second professional is one of its own: never the one who raised the alert, nor
    anyone of another agency (operators included), who would judge without reading it. An alert whose
    raiser is unknown cannot show that its reviewer is a second person, so no one reviews it.
    """
    return raised_by is not None and reviewer != raised_by and reviewer_agency == raising_agency
