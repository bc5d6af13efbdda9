"""The on-call rules: who is paged for an alert, when it passes to the next level or is exhausted, how alerts
about one person are grouped, and which alerts a worker sees.

Pure functions over plain values; the dispatcher loads the alerts, applies the steps returned (rows, events,
pages) and tells the workers. Time is an argument: a test moves it, nothing here reads a clock.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from maillage.domain.errors import Conflict
from maillage.domain.rota import Rota
from maillage.domain.vocabulary import Severity

SEVERITY_RANK = {Severity.INFO: 0, Severity.HIGH: 1, Severity.IMMINENT: 2}


class AlertState(StrEnum):
    OPEN = "open"  # paging, level by level
    UNACKNOWLEDGED = "unacknowledged"  # every level paged in vain; the fallback was called; still acknowledgeable
    ACKNOWLEDGED = "acknowledged"
    GROUPED = "grouped"  # folded into an earlier open alert about the same person


# An alert every level let pass is still shown: someone may yet take it in hand, late but not never.
SHOWN = frozenset({AlertState.OPEN, AlertState.UNACKNOWLEDGED})


class Grace(StrEnum):
    """Where the dispatcher stands after a start: every worker's socket was cut, and they are coming back."""

    RECONNECTING = "reconnecting"  # within the grace: a level with no one connected waits for its deadline
    ENDING = "ending"  # the first turn past it: whoever is not back is not coming, so such a level passes now
    OVER = "over"


@dataclass(frozen=True)
class Alert:
    """An alert at one served agency, as the rules see it (a group is seen through its first alert)."""

    alert_id: str
    agency: str
    subject_ref: str
    severity: Severity
    state: AlertState
    received_at: datetime
    level_started_at: datetime  # when the alert reached its current level
    level: int = 1
    deadline: datetime | None = None
    grouped: int = 1  # alerts in the group, this one included
    paged: frozenset[str] = frozenset()  # every worker paged for it, at any level
    acknowledged_by: str | None = None


@dataclass(frozen=True)
class PageWorkers:
    """Page `workers` (none were paged for this alert before) at `level`, which runs from `since` to `deadline`.
    No workers: within the restart grace, the level waits for its deadline all the same."""

    alert_id: str
    level: int
    workers: frozenset[str]
    since: datetime
    deadline: datetime


@dataclass(frozen=True)
class Escalate:
    """The alert passes to `level`: its sender is told (art. 458bis: the one who raised it must know it is
    still unanswered)."""

    alert_id: str
    level: int


@dataclass(frozen=True)
class Exhaust:
    """Every level, up to `level`, let the alert pass: operators and the agency's fallback are told."""

    alert_id: str
    level: int


Step = PageWorkers | Escalate | Exhaust


@dataclass(frozen=True)
class Folded:
    """A group after one more alert joined it; `rings_again` when the newcomer made it graver."""

    grouped: int
    severity: Severity
    deadline: datetime | None
    rings_again: bool


def delay(severity: Severity, *, rota: Rota) -> timedelta:
    """How long one level has before the next is paged: the agency's policy, by severity."""
    return timedelta(seconds=rota.policy.escalate_after[severity])


def current_level(alert: Alert, *, rota: Rota) -> int:
    """The alert's level, or the rota's last one if its level was removed from the rota since."""
    return min(alert.level, rota.depth)


def arrival_steps(
    alert: Alert, *, rota: Rota, connected: frozenset[str], now: datetime, grace: Grace
) -> tuple[Step, ...]:
    """A new alert (not grouped) enters level 1."""
    return _enter(alert, level=1, rota=rota, connected=connected, now=now, grace=grace)


def next_steps(
    alerts: Iterable[Alert], *, rota: Rota, connected: frozenset[str], now: datetime, grace: Grace
) -> tuple[Step, ...]:
    """Time passing, for the alerts of the agency whose `rota` this is, with `connected` its workers online now.

    A level whose time ran out passes to the next; before that, whoever came on call at it since (a new shift,
    a worker back online) is paged, once. Only open alerts move: acknowledged, grouped or exhausted ones never."""
    on_call: dict[int, frozenset[str]] = {}
    steps: list[Step] = []
    for alert in alerts:
        if alert.state is not AlertState.OPEN:
            continue
        level = current_level(alert, rota=rota)
        if level not in on_call:
            on_call[level] = rota.on_call(level, now) & connected
        steps.extend(
            _turn(alert, level=level, present=on_call[level], rota=rota, connected=connected, now=now, grace=grace)
        )
    return tuple(steps)


def _turn(
    alert: Alert,
    *,
    level: int,
    present: frozenset[str],
    rota: Rota,
    connected: frozenset[str],
    now: datetime,
    grace: Grace,
) -> tuple[Step, ...]:
    deadline = alert.deadline or _level_deadline(alert, rota=rota)
    # Past the restart grace, a level no one came back to is as good as no level: waiting would only delay help.
    deserted = grace is Grace.ENDING and not present
    if not deserted and now < deadline:
        fresh = present - alert.paged
        if not fresh:
            return ()
        return (PageWorkers(alert.alert_id, level, fresh, since=alert.level_started_at, deadline=deadline),)
    if level < rota.depth:
        passed = Escalate(alert.alert_id, level + 1)
        return (passed, *_enter(alert, level=level + 1, rota=rota, connected=connected, now=now, grace=grace))
    return (Exhaust(alert.alert_id, level),)


def _level_deadline(alert: Alert, *, rota: Rota) -> datetime:
    # An open alert always has its deadline; this is the same rule, for a value built without one.
    return alert.level_started_at + delay(alert.severity, rota=rota)


def _enter(
    alert: Alert, *, level: int, rota: Rota, connected: frozenset[str], now: datetime, grace: Grace
) -> tuple[Step, ...]:
    """The alert reaches `level`: who is on call there and connected is paged. A level with no one connected
    passes at once (no one would answer in time), each passing told to the sender; past the last, exhausted.
    Within the restart grace workers are reconnecting: the level waits for its deadline instead."""
    steps: list[Step] = []
    while True:
        targets = rota.on_call(level, now) & connected
        if targets or grace is Grace.RECONNECTING:
            deadline = now + delay(alert.severity, rota=rota)
            steps.append(PageWorkers(alert.alert_id, level, targets - alert.paged, since=now, deadline=deadline))
            return tuple(steps)
        if level >= rota.depth:
            steps.append(Exhaust(alert.alert_id, level))
            return tuple(steps)
        level += 1
        steps.append(Escalate(alert.alert_id, level))


def group_into(alert: Alert, *, candidates: Iterable[Alert], window: timedelta) -> Alert | None:
    """The alert a new one joins, if any: the oldest still paging about the same person at the same agency,
    received within `window` before it. One person in danger is one page, however many agencies sound it;
    an alert every level already let pass is not joined: a new alert pages afresh."""
    joinable = [
        other
        for other in candidates
        if other.alert_id != alert.alert_id
        and other.agency == alert.agency
        and other.subject_ref == alert.subject_ref
        and other.state is AlertState.OPEN
        and other.received_at >= alert.received_at - window
    ]
    return min(joinable, key=lambda other: other.received_at, default=None)


def fold(primary: Alert, *, severity: Severity, rota: Rota) -> Folded:
    """`primary` after an alert of `severity` joined it. Grouped alerts are not paged again, but a graver one
    about the same person rings again, and the current level gets no more time than that severity allows."""
    grouped = primary.grouped + 1
    if SEVERITY_RANK[severity] <= SEVERITY_RANK[primary.severity]:
        return Folded(grouped=grouped, severity=primary.severity, deadline=primary.deadline, rings_again=False)
    deadline = primary.deadline
    if deadline is not None:
        deadline = min(deadline, primary.level_started_at + delay(severity, rota=rota))
    return Folded(grouped=grouped, severity=severity, deadline=deadline, rings_again=True)


def visible(alert: Alert, *, agency: str, worker: str, levels: Collection[int]) -> bool:
    """Whether `worker` of `agency`, on call now at `levels`, sees the alert: those on call at its level or below
    (an alert that climbed past a level is still theirs to take), and whoever was paged for it. Another agency's
    workers never do: the alert's content was disclosed to this agency alone."""
    if alert.agency != agency or alert.state not in SHOWN:
        return False
    return (bool(levels) and min(levels) <= alert.level) or worker in alert.paged


def acknowledgement_level(alert: Alert, *, worker: str, levels: Collection[int]) -> int | None:
    """The level at which `worker` takes the alert in hand: their own lowest level on call (a worker paged
    earlier and off duty since: the alert's). None when they already did (the same tap twice); Conflict when
    someone else did: one person answers, and everyone else who saw it is told so."""
    if alert.state is AlertState.ACKNOWLEDGED:
        if alert.acknowledged_by == worker:
            return None
        raise Conflict("problem.conflict.acknowledged-by-other")
    return min(levels) if levels else alert.level
