"""The four-eyes rule of a danger disclosure (art. 458bis): a second person, of another agency, approves it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from maillage.domain.review import may_approve

pytestmark = pytest.mark.unit

refs = st.text(alphabet="0123456789abcdef", min_size=16, max_size=16)
agencies = st.sampled_from(["refuge-liege", "zp-meuse", "cpas-seraing", "operators"])


def test_a_second_person_of_another_agency_approves() -> None:
    assert may_approve(
        reviewer="b" * 16, reviewer_agency="operators", raised_by="a" * 16, raising_agency="refuge-liege"
    )


def test_the_person_who_raised_the_alert_never_approves_it() -> None:
    assert not may_approve(
        reviewer="a" * 16, reviewer_agency="operators", raised_by="a" * 16, raising_agency="refuge-liege"
    )


def test_a_colleague_at_the_raising_agency_never_approves_it() -> None:
    assert not may_approve(
        reviewer="b" * 16, reviewer_agency="refuge-liege", raised_by="a" * 16, raising_agency="refuge-liege"
    )


def test_an_alert_of_unknown_raiser_still_needs_another_agency() -> None:
    assert may_approve(reviewer="b" * 16, reviewer_agency="operators", raised_by=None, raising_agency="refuge-liege")
    assert not may_approve(
        reviewer="b" * 16, reviewer_agency="refuge-liege", raised_by=None, raising_agency="refuge-liege"
    )


@given(person=refs, reviewer_agency=agencies, raising_agency=agencies)
def test_no_one_approves_their_own_alert_wherever_their_token_comes_from(
    person: str, reviewer_agency: str, raising_agency: str
) -> None:
    assert not may_approve(
        reviewer=person, reviewer_agency=reviewer_agency, raised_by=person, raising_agency=raising_agency
    )


@given(reviewer=refs, raised_by=refs | st.none(), agency=agencies)
def test_no_one_of_the_raising_agency_approves_its_alert(reviewer: str, raised_by: str | None, agency: str) -> None:
    assert not may_approve(reviewer=reviewer, reviewer_agency=agency, raised_by=raised_by, raising_agency=agency)
