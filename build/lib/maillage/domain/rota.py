"""Who is on call, at which level, at a given moment: each agency's rota and escalation policy, in local time."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, field_validator

from maillage.domain.vocabulary import Severity


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Weekday(StrEnum):
    MON = "mon"
    TUE = "tue"
    WED = "wed"
    THU = "thu"
    FRI = "fri"
    SAT = "sat"
    SUN = "sun"


WEEK = tuple(Weekday)


class Shift(_Frozen):
    """Who is on call, on which days, from `start` to `end` local time; an `end` at or before `start`
    runs past midnight into the next day; no `end` means until midnight."""

    workers: tuple[str, ...] = Field(min_length=1)
    days: tuple[Weekday, ...] = WEEK
    start: time = time(0)
    end: time | None = None


class OncallLevel(_Frozen):
    name: str
    shifts: tuple[Shift, ...] = Field(min_length=1)


DEFAULT_ESCALATE_AFTER = {Severity.IMMINENT: 120, Severity.HIGH: 600, Severity.INFO: 3600}


class OncallPolicy(_Frozen):
    """One agency's rota and escalation policy: ordered levels, and per severity the seconds a level
    has before the next is paged; when every level is exhausted, `fallback_url` is called."""

    levels: tuple[OncallLevel, ...] = Field(min_length=1)
    escalate_after: dict[Severity, int] = Field(default_factory=lambda: dict(DEFAULT_ESCALATE_AFTER))
    fallback_url: AnyHttpUrl | None = None

    @field_validator("fallback_url")
    @classmethod
    def _https_without_credentials(cls, value: AnyHttpUrl | None) -> AnyHttpUrl | None:
        # It carries alert metadata: never in clear, and a password in a URL ends up in logs and files.
        if value is not None and (value.scheme != "https" or value.username or value.password):
            raise ValueError("fallback_url must be an https URL without credentials")
        return value

    @field_validator("escalate_after")
    @classmethod
    def _every_severity(cls, value: dict[Severity, int]) -> dict[Severity, int]:
        merged = DEFAULT_ESCALATE_AFTER | value
        if any(seconds <= 0 for seconds in merged.values()):
            raise ValueError("escalation delays must be positive numbers of seconds")
        return merged


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
