"""Retention as policy: the network file's `[retention]` periods, and the cut-offs the services purge by."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from maillage.core.config.network import Network, StorageRetention, load_network
from maillage.core.config.settings import DEFAULT_NETWORK
from maillage.domain.retention import KEEP, Stored, cutoff, cutoffs, past_its_time

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
moments = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC))
periods = st.integers(min_value=1, max_value=10_000)


def test_the_shipped_file_documents_every_kind_with_the_defaults_the_services_apply() -> None:
    written = tomllib.loads(DEFAULT_NETWORK.read_text())["retention"]
    assert {kind.value for kind in Stored} <= set(written)
    assert load_network(DEFAULT_NETWORK).retention == StorageRetention()
    assert StorageRetention().periods == {kind: written[kind.value] for kind in Stored}


def test_default_periods() -> None:
    periods = StorageRetention().periods
    assert periods[Stored.INBOX_ITEMS] == 365
    assert periods[Stored.CLOSED_REFERRALS] == 730
    assert periods[Stored.ACKNOWLEDGED_ALERTS] == 365
    assert periods[Stored.WEBHOOK_BODIES] == 30
    assert periods[Stored.PUBLISHED_OUTBOX] == 7
    assert periods[Stored.SIGNIN_SESSIONS] == 30


def test_a_period_of_zero_days_is_refused_with_its_reason() -> None:
    with pytest.raises(ValidationError, match="0 days would delete what just finished; -1 keeps it"):
        StorageRetention(inbox_items=0)


def test_a_negative_period_other_than_minus_one_is_refused() -> None:
    with pytest.raises(ValidationError, match="at least 1"):
        StorageRetention(webhook_bodies=-7)


def test_minus_one_keeps_a_kind_and_a_kind_left_out_takes_its_default() -> None:
    retention = StorageRetention.model_validate({"inbox_items": -1})
    moments = retention.cutoffs(NOW)
    assert Stored.INBOX_ITEMS not in moments
    assert moments[Stored.CLOSED_REFERRALS] == NOW - timedelta(days=730)


def test_an_unknown_kind_is_refused() -> None:
    with pytest.raises(ValidationError):
        StorageRetention.model_validate({"inbox": 10})


def test_the_purge_runs_at_least_every_minute_and_by_batches_of_at_least_one_row() -> None:
    with pytest.raises(ValidationError):
        StorageRetention(purge_interval_minutes=0)
    with pytest.raises(ValidationError):
        StorageRetention(purge_batch=0)


def _network(**retention: object) -> dict[str, Any]:
    doc = tomllib.loads(DEFAULT_NETWORK.read_text())
    doc["policy"] = str(load_network(DEFAULT_NETWORK).policy)
    doc["retention"] = {**doc["retention"], **retention}
    return doc


def test_dedup_records_kept_shorter_than_the_submitted_topic_are_refused() -> None:
    with pytest.raises(ValidationError, match=r"must be at least kafka\.retention\.submitted"):
        Network.model_validate(_network(dedup_records=3))


def test_dedup_records_kept_forever_suit_any_submitted_topic() -> None:
    assert Network.model_validate(_network(dedup_records=-1)).retention.dedup_records == KEEP


def test_cutoff_is_the_period_before_now() -> None:
    assert cutoff(30, now=NOW) == datetime(2026, 10, 31, 12, 0, tzinfo=UTC)
    assert cutoff(KEEP, now=NOW) is None


def test_cutoffs_leave_out_the_kinds_kept() -> None:
    moments = cutoffs({Stored.INBOX_ITEMS: 365, Stored.DEAD_LETTERS: KEEP}, now=NOW)
    assert moments == {Stored.INBOX_ITEMS: NOW - timedelta(days=365)}


def test_a_thing_not_finished_is_never_past_its_time() -> None:
    assert not past_its_time(None, days=1, now=NOW + timedelta(days=100_000))


def test_a_kind_kept_is_never_past_its_time() -> None:
    assert not past_its_time(NOW - timedelta(days=100_000), days=KEEP, now=NOW)


@given(finished_at=moments, days=periods, now=moments)
def test_a_finished_thing_goes_exactly_when_its_period_has_passed(
    finished_at: datetime, days: int, now: datetime
) -> None:
    assert past_its_time(finished_at, days=days, now=now) == (now - finished_at > timedelta(days=days))


@given(
    finished_at=moments,
    days=periods,
    now=moments,
    later=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=100_000)),
)
def test_once_past_its_time_a_thing_stays_past_it(
    finished_at: datetime, days: int, now: datetime, later: timedelta
) -> None:
    if past_its_time(finished_at, days=days, now=now):
        assert past_its_time(finished_at, days=days, now=now + later)


def test_the_file_refuses_zero_like_the_topics_do() -> None:
    with pytest.raises(ValidationError, match="retention"):
        Network.model_validate(_network(acknowledged_alerts=0))


def test_a_submitted_topic_kept_forever_needs_dedup_records_kept_forever() -> None:
    doc = _network()
    doc["kafka"] = {**doc["kafka"], "retention": {**doc["kafka"]["retention"], "submitted": -1}}
    with pytest.raises(ValidationError, match="kept forever"):
        Network.model_validate(doc)
