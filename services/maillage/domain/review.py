"""The four-eyes rule: who may approve a disclosure made without consent under the danger basis."""

from __future__ import annotations


def may_approve(*, reviewer: str, reviewer_agency: str, raised_by: str | None, raising_agency: str) -> bool:
    """Whether `reviewer` (a pseudonymous staff reference, issued by `reviewer_agency`) may approve the
    disclosure of an alert raised by `raised_by` at `raising_agency`.

    Penal Code art. 458bis lets a professional bound by secrecy (art. 458) disclose without consent only
    when they judge a danger serious and imminent. That judgement breaks a person's secrecy on one
    person's word, so a second professional reviews it: never the one who raised the alert, nor anyone
    of the raising agency — it issues its own staff's tokens, so it could name anyone as a second person.
    An alert whose raiser is unknown is still held to the second half of the rule.
    """
    return reviewer != raised_by and reviewer_agency != raising_agency
