"""Retention as policy: how long each kind of stored data is kept once finished, and the cut-off that follows."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from enum import StrEnum

from maillage.domain.escalation import AlertState
from maillage.domain.referrals import ReferralState

KEEP = -1  # a period of -1 days: kept until erased, never purged for its age


class Stored(StrEnum):
    """The kinds of stored data the network file's `[retention]` gives a period to, each named for what it keeps."""

    INBOX_ITEMS = "inbox_items"  # from its reception; kept while the referral it carries is open
    CLOSED_REFERRALS = "closed_referrals"  # from its last change, once declined or closed
    SENT_EVENTS = "sent_events"  # from its sending, with its statuses; kept while its referral or alert is open
    ACKNOWLEDGED_ALERTS = "acknowledged_alerts"  # from its acknowledgement, with its pages
    WEBHOOK_BODIES = "webhook_bodies"  # from its last attempt, once delivered or given up: the body is erased
    WEBHOOK_DELIVERIES = "webhook_deliveries"  # the same, the metadata row and its attempts deleted
    PUBLISHED_OUTBOX = "published_outbox"  # from its publication
    ENDED_CONSENTS = "ended_consents"  # from its withdrawal or expiry
    SIGNIN_SESSIONS = "signin_sessions"  # from its expiry or revocation; used invitations from their expiry
    IDEMPOTENCY_KEYS = "idempotency_keys"  # from the request
    DEDUP_RECORDS = "dedup_records"  # the gateway's decided events, from the decision
    DEAD_LETTERS = "dead_letters"  # the monitor's, from their arrival


# Only finished things are purged: a referral someone still works on, an alert no one took in hand, stay.
FINISHED_REFERRALS = frozenset({ReferralState.DECLINED, ReferralState.CLOSED})
FINISHED_ALERTS = frozenset({AlertState.ACKNOWLEDGED})
FINISHED_WEBHOOK_DELIVERIES = frozenset({"delivered", "failed"})


def cutoff(days: int, *, now: datetime) -> datetime | None:
    """Before this moment, what finished is past its time; None: kept (`-1`)."""
    if days == KEEP:
        return None
    if days < 1:
        raise ValueError(f"a retention period is at least one day, or {KEEP} to keep; not {days}")
    return now - timedelta(days=days)


def cutoffs(periods: Mapping[Stored, int], *, now: datetime) -> dict[Stored, datetime]:
    """Each kind's cut-off at `now`; the kinds kept (`-1`) have none."""
    moments = {kind: cutoff(days, now=now) for kind, days in periods.items()}
    return {kind: moment for kind, moment in moments.items() if moment is not None}


def past_its_time(finished_at: datetime | None, *, days: int, now: datetime) -> bool:
    """Whether one thing, finished at `finished_at` (None: not finished), is purged at `now`: the rule each
    repository's purge query states in SQL."""
    moment = cutoff(days, now=now)
    return finished_at is not None and moment is not None and finished_at < moment
