"""Who is on call, at which level, at a given moment: the rota of the network file, in local time."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from maillage.core.network import WEEK, OncallPolicy, Shift


def covers(shift: Shift, local: datetime) -> bool:
    """Whether `shift` covers this local date and time (a shift ending at or before its start ends the next day)."""
    day, now = WEEK[local.weekday()], local.time()
    if shift.end is None or shift.end > shift.start:
        return day in shift.days and shift.start <= now < (shift.end or time.max)
    yesterday = WEEK[(local - timedelta(days=1)).weekday()]
    return (day in shift.days and now >= shift.start) or (yesterday in shift.days and now < shift.end)


class Rota:
    """One agency's rota; levels are numbered from 1."""

    def __init__(self, policy: OncallPolicy, *, timezone: str) -> None:
        self.policy = policy
        self.zone = ZoneInfo(timezone)

    @property
    def depth(self) -> int:
        return len(self.policy.levels)

    def level_name(self, level: int) -> str:
        return self.policy.levels[level - 1].name

    def on_call(self, level: int, at: datetime) -> frozenset[str]:
        local = at.astimezone(self.zone)
        return frozenset(
            w for shift in self.policy.levels[level - 1].shifts if covers(shift, local) for w in shift.workers
        )

    def levels_of(self, worker: str, at: datetime) -> tuple[int, ...]:
        """The levels at which `worker` is on call at `at` (none: off duty)."""
        return tuple(n for n in range(1, self.depth + 1) if worker in self.on_call(n, at))

    def known(self, worker: str) -> bool:
        return any(worker in shift.workers for level in self.policy.levels for shift in level.shifts)
