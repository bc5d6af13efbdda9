"""The four-eyes rule of a danger disclosure (art. 458bis): a second professional of the raising agency
reviews it, where the justification lives."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from maillage.domain.review import may_review

pytestmark = pytest.mark.unit

refs = st.text(alphabet="0123456789abcdef", min_size=16, max_size=16)
agencies = st.sampled_from(["refuge-liege", "zp-meuse", "cpas-seraing", "operators"])


def test_a_second_professional_of_the_raising_agency_reviews() -> None:
    assert may_review(
        reviewer="b" * 16, reviewer_agency="refuge-liege", raised_by="a" * 16, raising_agency="refuge-liege"
    )


def test_the_person_who_raised_the_alert_never_reviews_it() -> None:
    assert not may_review(
        reviewer="a" * 16, reviewer_agency="refuge-liege", raised_by="a" * 16, raising_agency="refuge-liege"
    )


def test_no_one_of_another_agency_reviews_it_operators_included() -> None:
    for agency in ("operators", "zp-meuse"):
        assert not may_review(
            reviewer="b" * 16, reviewer_agency=agency, raised_by="a" * 16, raising_agency="refuge-liege"
        )


def test_an_alert_of_unknown_raiser_is_reviewed_by_no_one() -> None:
    assert not may_review(
        reviewer="b" * 16, reviewer_agency="refuge-liege", raised_by=None, raising_agency="refuge-liege"
    )


@given(person=refs, reviewer_agency=agencies, raising_agency=agencies)
def test_no_one_reviews_their_own_alert_wherever_their_token_comes_from(
    person: str, reviewer_agency: str, raising_agency: str
) -> None:
    assert not may_review(
        reviewer=person, reviewer_agency=reviewer_agency, raised_by=person, raising_agency=raising_agency
    )


@given(reviewer=refs, raised_by=refs, reviewer_agency=agencies, raising_agency=agencies)
def test_whoever_may_review_is_of_the_raising_agency_and_not_the_raiser(
    reviewer: str, raised_by: str, reviewer_agency: str, raising_agency: str
) -> None:
    allowed = may_review(
        reviewer=reviewer, reviewer_agency=reviewer_agency, raised_by=raised_by, raising_agency=raising_agency
    )
    assert allowed == (reviewer != raised_by and reviewer_agency == raising_agency)
