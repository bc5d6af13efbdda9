"""The escalation and grouping rules as properties: over any rota, any comings and goings of workers and any
pace of time, no one is paged twice, an acknowledged alert stays quiet, an imminent alert never waits past its
level's delay, a deserted level passes at once, and one person's alerts never join another's."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, time, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from maillage.core.clock import ManualClock
from maillage.domain.errors import Conflict
from maillage.domain.escalation import (
    SEVERITY_RANK,
    SHOWN,
    Alert,
    AlertState,
    Escalate,
    Exhaust,
    Grace,
    PageWorkers,
    Step,
    acknowledgement_level,
    arrival_steps,
    delay,
    fold,
    group_into,
    next_steps,
    visible,
)
from maillage.domain.rota import OncallLevel, OncallPolicy, Rota, Shift
from maillage.domain.vocabulary import Severity

pytestmark = pytest.mark.unit

START = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)  # a Wednesday, 10:00 in Brussels
AGENCY = "zp-meuse"
WORKERS = ("dubois", "martin", "janssens", "leclercq", "peeters", "lambert")
SUBJECTS = ("s-" + "a" * 32, "s-" + "b" * 32)
WINDOW = timedelta(minutes=10)

workers = st.frozensets(st.sampled_from(WORKERS))
severities = st.sampled_from(list(Severity))
shifts = st.builds(
    Shift,
    workers=st.lists(st.sampled_from(WORKERS), min_size=1, max_size=3, unique=True).map(tuple),
    # Shifts turning within the few hours a run lasts (it starts at 10:00), and around the clock.
    start=st.sampled_from([0, 8, 10, 11, 12, 20]).map(lambda hour: time(hour)),
    end=st.none() | st.sampled_from([8, 11, 12, 20]).map(lambda hour: time(hour)),
)
levels = st.lists(
    st.builds(OncallLevel, name=st.just("level"), shifts=st.lists(shifts, min_size=1, max_size=2).map(tuple)),
    min_size=1,
    max_size=4,
)
delays = st.fixed_dictionaries({s: st.integers(60, 3600) for s in Severity})
rotas = st.builds(
    lambda lv, after: Rota(OncallPolicy(levels=tuple(lv), escalate_after=after), timezone="Europe/Brussels"),
    levels,
    delays,
)


@dataclass(frozen=True)
class Turn:
    """Time moves on by `seconds`; then `connected` are the workers online; `ack` someone takes the alert."""

    seconds: int
    connected: frozenset[str]
    ack: bool = False


turns = st.lists(
    st.builds(Turn, seconds=st.integers(0, 1800), connected=workers, ack=st.integers(0, 9).map(lambda n: n == 0)),
    max_size=12,
)


def new_alert(*, severity: Severity, at: datetime, alert_id: str = "a-1", subject: str = SUBJECTS[0]) -> Alert:
    return Alert(
        alert_id=alert_id,
        agency=AGENCY,
        subject_ref=subject,
        severity=severity,
        state=AlertState.OPEN,
        received_at=at,
        level_started_at=at,
    )


def applied(alert: Alert, steps: tuple[Step, ...]) -> Alert:
    """The alert after the dispatcher applied the steps (as its rows would hold it)."""
    for step in steps:
        assert step.alert_id == alert.alert_id
        match step:
            case PageWorkers():
                alert = replace(
                    alert,
                    level=step.level,
                    level_started_at=step.since,
                    deadline=step.deadline,
                    paged=alert.paged | step.workers,
                )
            case Exhaust():
                alert = replace(alert, level=step.level, state=AlertState.UNACKNOWLEDGED, deadline=None)
    return alert


@dataclass
class Run:
    """One alert's life: raised, then turns of the escalation timer on a manual clock."""

    rota: Rota
    severity: Severity
    grace_seconds: int = 0
    clock: ManualClock = field(default_factory=lambda: ManualClock(START))
    pages: list[tuple[int, str]] = field(default_factory=list)
    history: list[tuple[Alert, datetime, frozenset[str], Grace, tuple[Step, ...]]] = field(default_factory=list)
    grace_over: bool = False

    def grace(self) -> Grace:
        if self.grace_over:
            return Grace.OVER
        if self.clock.now() < START + timedelta(seconds=self.grace_seconds):
            return Grace.RECONNECTING
        return Grace.ENDING

    def play(self, first: frozenset[str], played: list[Turn]) -> Alert:
        alert = new_alert(severity=self.severity, at=START)
        grace = self.grace()
        alert = self._record(
            alert, first, grace, arrival_steps(alert, rota=self.rota, connected=first, now=START, grace=grace)
        )
        for turn in played:
            self.clock.advance(timedelta(seconds=turn.seconds))
            if turn.ack and alert.state in SHOWN:
                alert = replace(alert, state=AlertState.ACKNOWLEDGED, acknowledged_by=WORKERS[0], deadline=None)
            grace = self.grace()
            steps = next_steps([alert], rota=self.rota, connected=turn.connected, now=self.clock.now(), grace=grace)
            alert = self._record(alert, turn.connected, grace, steps)
            self.grace_over = self.grace_over or grace is Grace.ENDING
        return alert

    def _record(self, alert: Alert, connected: frozenset[str], grace: Grace, steps: tuple[Step, ...]) -> Alert:
        self.history.append((alert, self.clock.now(), connected, grace, steps))
        self.pages.extend((s.level, w) for s in steps if isinstance(s, PageWorkers) for w in s.workers)
        return applied(alert, steps)


runs = st.builds(Run, rota=rotas, severity=severities, grace_seconds=st.sampled_from([0, 0, 60, 600]))


@settings(max_examples=300, deadline=None)
@given(run=runs, first=workers, played=turns)
def test_nobody_is_paged_twice_for_one_level(run: Run, first: frozenset[str], played: list[Turn]) -> None:
    run.play(first, played)
    assert len(run.pages) == len(set(run.pages))
    # Stronger still: a worker paged at one level is told of the next one, not rung again.
    assert len({worker for _, worker in run.pages}) == len(run.pages)


@settings(max_examples=300, deadline=None)
@given(run=runs, first=workers, played=turns)
def test_an_acknowledged_alert_is_never_paged_again(run: Run, first: frozenset[str], played: list[Turn]) -> None:
    run.play(first, played)
    for alert, _, _, _, steps in run.history:
        if alert.state is AlertState.ACKNOWLEDGED:
            assert steps == (), "an alert taken in hand pages no one, escalates nowhere"


@settings(max_examples=200, deadline=None)
@given(
    rota=rotas,
    connected=workers,
    severity=severities,
    state=st.sampled_from(list(AlertState)),
    late=st.integers(0, 10**5),
)
def test_only_a_paging_alert_ever_moves(
    rota: Rota, connected: frozenset[str], severity: Severity, state: AlertState, late: int
) -> None:
    alert = replace(new_alert(severity=severity, at=START), state=state, deadline=START)
    now = START + timedelta(seconds=late)
    for grace in Grace:
        steps = next_steps([alert], rota=rota, connected=connected, now=now, grace=grace)
        assert state is AlertState.OPEN or steps == ()


@settings(max_examples=300, deadline=None)
@given(
    run=st.builds(Run, rota=rotas, severity=st.just(Severity.IMMINENT), grace_seconds=st.sampled_from([0, 60, 600])),
    first=workers,
    played=turns,
)
def test_an_imminent_alert_never_waits_past_its_levels_delay(
    run: Run, first: frozenset[str], played: list[Turn]
) -> None:
    run.play(first, played)
    most = delay(Severity.IMMINENT, rota=run.rota)
    for alert, now, _, _, steps in run.history:
        for step in steps:
            if isinstance(step, PageWorkers):
                assert step.deadline - step.since <= most
        if alert.state is AlertState.OPEN and now >= alert.level_started_at + most:
            left = [
                s for s in steps if isinstance(s, Exhaust) or (isinstance(s, PageWorkers) and s.level > alert.level)
            ]
            assert left, f"still at level {alert.level} {now - alert.level_started_at} after it was paged"


@settings(max_examples=300, deadline=None)
@given(
    rota=rotas,
    connected=workers,
    level=st.integers(1, 4),
    paged=workers,
    late=st.integers(0, 3600),
    grace=st.sampled_from(list(Grace)),
)
def test_an_imminent_alert_leaves_its_level_the_moment_its_delay_is_over(
    rota: Rota, connected: frozenset[str], level: int, paged: frozenset[str], late: int, grace: Grace
) -> None:
    level = min(level, rota.depth)
    since = START - delay(Severity.IMMINENT, rota=rota)
    alert = replace(new_alert(severity=Severity.IMMINENT, at=since), level=level, paged=paged)
    alert = replace(alert, deadline=since + delay(Severity.IMMINENT, rota=rota))
    now = START + timedelta(seconds=late)
    steps = next_steps([alert], rota=rota, connected=connected, now=now, grace=grace)
    assert steps and (isinstance(steps[-1], Exhaust) or steps[-1].level > level)


@settings(max_examples=300, deadline=None)
@given(run=runs, first=workers, played=turns)
def test_a_level_with_no_one_connected_passes_at_once_outside_the_restart_grace(
    run: Run, first: frozenset[str], played: list[Turn]
) -> None:
    run.play(first, played)
    for turn, (alert, now, connected, grace, steps) in enumerate(run.history):
        if grace is Grace.RECONNECTING:
            continue
        entered = alert.level if turn == 0 else alert.level + 1  # the first level this turn may enter
        for step in steps:
            if isinstance(step, PageWorkers):
                assert run.rota.on_call(step.level, now) & connected, f"level {step.level} waits with no one"
            if isinstance(step, Escalate) and step.level - 1 >= entered:
                passed = step.level - 1  # entered in this very turn, and passed at once
                assert not run.rota.on_call(passed, now) & connected


@settings(max_examples=200, deadline=None)
@given(rota=rotas, connected=workers, severity=severities, early=st.integers(1, 3600))
def test_a_level_no_one_came_back_to_passes_when_the_restart_grace_ends(
    rota: Rota, connected: frozenset[str], severity: Severity, early: int
) -> None:
    alert = replace(new_alert(severity=severity, at=START), deadline=START + timedelta(seconds=early))
    steps = next_steps([alert], rota=rota, connected=connected, now=START, grace=Grace.ENDING)
    if not rota.on_call(1, START) & connected:
        assert steps and isinstance(steps[0], Escalate | Exhaust), "passed before its deadline"
    waiting = next_steps([alert], rota=rota, connected=connected, now=START, grace=Grace.OVER)
    assert not [s for s in waiting if isinstance(s, Escalate | Exhaust)], "outside that moment, the deadline decides"


others = st.builds(
    Alert,
    alert_id=st.uuids().map(str),
    agency=st.sampled_from([AGENCY, "zp-ardennes"]),
    subject_ref=st.sampled_from(SUBJECTS),
    severity=severities,
    state=st.sampled_from(list(AlertState)),
    received_at=st.integers(-3600, 0).map(lambda s: START + timedelta(seconds=s)),
    level_started_at=st.just(START),
)


@settings(max_examples=500, deadline=None)
@given(candidates=st.lists(others, max_size=8), subject=st.sampled_from(SUBJECTS))
def test_grouping_never_folds_an_alert_into_another_persons_or_agencys(candidates: list[Alert], subject: str) -> None:
    arriving = new_alert(severity=Severity.HIGH, at=START, alert_id="new", subject=subject)
    joined = group_into(arriving, candidates=candidates, window=WINDOW)
    joinable = [
        c
        for c in candidates
        if (c.agency, c.subject_ref, c.state) == (AGENCY, subject, AlertState.OPEN) and c.received_at >= START - WINDOW
    ]
    if joined is None:
        assert not joinable, "an alert still paging about the same person, within the window, is joined"
    else:
        assert (joined.agency, joined.subject_ref) == (arriving.agency, arriving.subject_ref)
        assert joined.state is AlertState.OPEN, "never into one taken in hand or let pass by every level"
        assert joined.received_at == min(c.received_at for c in joinable)


@settings(max_examples=300, deadline=None)
@given(rota=rotas, first=severities, then=severities, started=st.integers(0, 3600), left=st.integers(1, 3600))
def test_a_graver_alert_rings_again_and_shortens_the_level(
    rota: Rota, first: Severity, then: Severity, started: int, left: int
) -> None:
    since = START - timedelta(seconds=started)
    primary = replace(new_alert(severity=first, at=since), deadline=START + timedelta(seconds=left))
    folded = fold(primary, severity=then, rota=rota)
    graver = SEVERITY_RANK[then] > SEVERITY_RANK[first]
    assert folded.grouped == 2 and folded.rings_again is graver
    assert folded.severity == (then if graver else first)
    assert folded.deadline is not None and primary.deadline is not None
    assert folded.deadline <= primary.deadline, "a group never gets more time by growing"
    assert folded.deadline <= since + delay(folded.severity, rota=rota) or not graver


@settings(max_examples=300, deadline=None)
@given(
    alert=others.map(lambda a: replace(a, level=2, paged=frozenset({"martin"}))),
    agency=st.sampled_from([AGENCY, "zp-ardennes"]),
    worker=st.sampled_from(WORKERS),
    on_call=st.lists(st.integers(1, 4), max_size=3, unique=True),
)
def test_a_worker_sees_only_their_agencys_alerts_still_to_take(
    alert: Alert, agency: str, worker: str, on_call: list[int]
) -> None:
    seen = visible(alert, agency=agency, worker=worker, levels=on_call)
    if seen:
        assert agency == alert.agency and alert.state in SHOWN
        assert worker in alert.paged or min(on_call) <= alert.level
    elif agency == alert.agency and alert.state in SHOWN:
        assert worker not in alert.paged, "whoever was paged sees it, on call or not"
        assert not on_call or min(on_call) > alert.level, "on call at its level or below: theirs to take"


def test_one_worker_takes_an_alert_in_hand_the_others_are_refused() -> None:
    alert = new_alert(severity=Severity.IMMINENT, at=START)
    assert acknowledgement_level(alert, worker="dubois", levels=(2, 1)) == 1
    assert acknowledgement_level(replace(alert, level=3), worker="dubois", levels=()) == 3, "off duty: its level"
    taken = replace(alert, state=AlertState.ACKNOWLEDGED, acknowledged_by="dubois")
    assert acknowledgement_level(taken, worker="dubois", levels=(1,)) is None, "the same tap twice"
    with pytest.raises(Conflict):
        acknowledgement_level(taken, worker="martin", levels=(1,))
