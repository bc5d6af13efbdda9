"""The gateway's status reports written without the models are the models' very JSON, byte for byte: a sender
reads them with `StatusReport`, and nothing about them may change with the way they are written."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from maillage.domain.status import RecipientLine, StatusReport, recipient_line, status_json

pytestmark = pytest.mark.unit

TEXT = st.text(max_size=12)
ZONES = st.sampled_from([UTC, timezone(timedelta(hours=1)), timezone(timedelta(hours=-3, minutes=-30)), None])
LINES = st.builds(
    recipient_line,
    recipient=TEXT,
    outcome=TEXT,
    sector=st.none() | TEXT,
    legal_basis=st.none() | TEXT,
    delivered=st.none() | st.lists(TEXT, max_size=4),
    removed=st.none() | st.dictionaries(TEXT, TEXT, max_size=3),
    reason=st.none() | TEXT,
    review=st.booleans(),
)


@given(
    event_id=TEXT,
    source=TEXT,
    kind=st.none() | TEXT,
    at=st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(9998, 1, 1), timezones=ZONES),
    lines=st.lists(LINES, max_size=4),
)
def test_a_status_report_is_the_models_json(
    event_id: str, source: str, kind: str | None, at: datetime, lines: list[dict[str, object]]
) -> None:
    model = StatusReport(
        event_id=event_id,
        source=source,
        type=kind,
        decided_at=at,
        recipients=[RecipientLine.model_validate(line) for line in lines],
    )
    written = status_json(event_id=event_id, source=source, type=kind, decided_at=at, recipients=lines)
    assert written == model.model_dump_json().encode()
    assert StatusReport.model_validate_json(written) == model


def test_a_line_left_to_its_defaults_is_the_models() -> None:
    line = recipient_line(recipient="gateway", outcome="recorded")
    assert line == RecipientLine(recipient="gateway", outcome="recorded").model_dump()
