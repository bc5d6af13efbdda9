"""How a set of latencies is summed up in the report: nearest-rank p50, p99 and the maximum, in ms."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Spread:
    p50_ms: float
    p99_ms: float
    max_ms: float

    @classmethod
    def of(cls, values_ms: list[float]) -> Spread:
        return cls(
            p50_ms=round(percentile(values_ms, 0.50), 1),
            p99_ms=round(percentile(values_ms, 0.99), 1),
            max_ms=round(max(values_ms, default=math.nan), 1),
        )


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def ms(later: datetime, earlier: datetime) -> float:
    return (later - earlier).total_seconds() * 1000
