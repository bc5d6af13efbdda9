"""What a scenario's traffic proves: from what the senders were answered and what the recipients' inboxes and
the senders' event fates show over the API, the figures of one scenario — lost, duplicated, unanswered."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class Answer:
    """What a partner system got for one POST: `status` None when no answer came (refused, reset, timed out)."""

    posted_at: datetime
    status: int | None
    event_id: str | None = None
    retry_after: bool = False
    problem: bool = False
    error: str | None = None

    @property
    def accepted(self) -> bool:
        return self.status is not None and 200 <= self.status < 300 and self.event_id is not None

    @property
    def clear_refusal(self) -> bool:
        """A 503 the partner can act on: an RFC 9457 problem body saying when to try again."""
        return self.status == 503 and self.retry_after and self.problem

    @property
    def label(self) -> str:
        if self.status is None:
            return f"no answer ({self.error})"
        if self.status == 503:
            return "503 + Retry-After" if self.clear_refusal else "503 without Retry-After or problem body"
        return str(self.status)


@dataclass(frozen=True)
class Fault:
    """One fault injected: `ended` is when the Pôle was given back what it lost (the same as `began` for a kill,
    whose restart is the supervisor's job)."""

    what: str
    began: datetime
    ended: datetime


@dataclass(frozen=True)
class Figures:
    scenario: str
    sent: int
    accepted: int
    refused: int  # a clear 503 with Retry-After
    failed: int  # anything else: a 5xx, an unclear 503, a 4xx, no answer at all
    delivered: int
    lost: int
    duplicated: int
    statuses: dict[str, int]
    missing_statuses: int
    max_delay_s: float | None
    recovery_s: float | None
    faults: int
    answers: dict[str, int] = field(default_factory=dict)
    note: str = ""
    ran: bool = True
    # Services the supervisor restarted during a scenario they must ride out by themselves (a database restart).
    service_restarts: int = 0

    @classmethod
    def not_run(cls, scenario: str, *, reason: str) -> Figures:
        return cls(
            scenario=scenario,
            sent=0,
            accepted=0,
            refused=0,
            failed=0,
            delivered=0,
            lost=0,
            duplicated=0,
            statuses={},
            missing_statuses=0,
            max_delay_s=None,
            recovery_s=None,
            faults=0,
            note=reason,
            ran=False,
        )

    @property
    def holds(self) -> bool:
        return (
            self.lost == 0
            and self.duplicated == 0
            and self.failed == 0
            and self.missing_statuses == 0
            and self.service_restarts == 0
        )


def tally(
    scenario: str,
    *,
    answers: Sequence[Answer],
    inbox: Iterable[tuple[str, datetime]],
    fates: Mapping[str, str],
    faults: Sequence[Fault] = (),
) -> Figures:
    """`inbox`: (event id, received at) of every item the recipient lists, other scenarios' included; `fates`:
    the state the sender's `GET /v1/events/{id}` shows for each accepted event it could read."""
    accepted = {a.event_id: a for a in answers if a.accepted and a.event_id is not None}
    copies: Counter[str] = Counter()
    first_received: dict[str, datetime] = {}
    for event_id, received_at in inbox:
        if event_id in accepted:
            copies[event_id] += 1
            first_received.setdefault(event_id, received_at)
    delays = [(first_received[i] - a.posted_at).total_seconds() for i, a in accepted.items() if i in first_received]
    seen = Counter(fates[i] for i in accepted if i in fates)
    return Figures(
        scenario=scenario,
        sent=len(answers),
        accepted=len(accepted),
        refused=sum(a.clear_refusal for a in answers),
        failed=sum(not a.accepted and not a.clear_refusal for a in answers),
        delivered=len(copies),
        lost=len(accepted) - len(copies),
        duplicated=sum(n - 1 for n in copies.values()),
        statuses=dict(seen),
        missing_statuses=len(accepted) - seen.get("decided", 0),
        max_delay_s=max(delays, default=None),
        recovery_s=recovery(faults, accepted=list(accepted.values()), received=first_received),
        faults=len(faults),
        answers=dict(Counter(a.label for a in answers)),
    )


def recovery(faults: Sequence[Fault], *, accepted: Sequence[Answer], received: Mapping[str, datetime]) -> float | None:
    """The longest of the faults' recoveries: from the moment the Pôle got back what it lost to the first
    arrival of a referral posted since the fault began — service as a partner sees it again, not a process
    merely running. None when no referral posted after a fault arrived (the loss figures say why)."""
    worst: float | None = None
    for fault in faults:
        after = [
            received[i]
            for a in accepted
            if (i := a.event_id) is not None and i in received and a.posted_at >= fault.began
        ]
        if not after:
            continue
        took = max(0.0, (min(after) - fault.ended).total_seconds())
        worst = took if worst is None else max(worst, took)
    return worst
