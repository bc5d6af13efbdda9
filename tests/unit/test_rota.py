"""The rota: who is on call at which level, in Brussels time, across midnight, weekends and DST."""

from __future__ import annotations

from datetime import UTC, datetime, time

import pytest

from maillage.core.config.network import NetworkError, load_network
from maillage.core.config.settings import DEFAULT_NETWORK
from maillage.domain.rota import OncallLevel, OncallPolicy, Rota, Shift, Weekday

pytestmark = pytest.mark.unit

WEEKDAYS = (Weekday.MON, Weekday.TUE, Weekday.WED, Weekday.THU, Weekday.FRI)
ROTA = Rota(
    OncallPolicy(
        levels=(
            OncallLevel(
                name="first",
                shifts=(
                    Shift(workers=("day",), days=WEEKDAYS, start=time(8), end=time(20)),
                    Shift(workers=("night",), days=WEEKDAYS, start=time(20), end=time(8)),
                    Shift(workers=("weekend",), days=(Weekday.SAT, Weekday.SUN)),
                ),
            ),
            OncallLevel(name="second", shifts=(Shift(workers=("chief",)),)),
        )
    ),
    timezone="Europe/Brussels",
)


def brussels(*args: int) -> datetime:
    """A Brussels wall-clock time, as the UTC instant the services hold."""
    from zoneinfo import ZoneInfo

    return datetime(*args, tzinfo=ZoneInfo("Europe/Brussels")).astimezone(UTC)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("moment", "first"),
    [
        (brussels(2026, 11, 25, 7, 59), {"night"}),  # Wednesday, before the day shift: Tuesday's night
        (brussels(2026, 11, 25, 8, 0), {"day"}),
        (brussels(2026, 11, 25, 19, 59), {"day"}),
        (brussels(2026, 11, 25, 20, 0), {"night"}),
        (brussels(2026, 11, 28, 3, 0), {"night", "weekend"}),  # Saturday 03:00: Friday's night runs on
        (brussels(2026, 11, 28, 9, 0), {"weekend"}),
        (brussels(2026, 11, 30, 7, 0), set()),  # Monday 07:00: Sunday has no night shift
        (brussels(2026, 3, 29, 12, 0), {"weekend"}),  # the Sunday clocks go forward
        (brussels(2026, 7, 1, 8, 30), {"day"}),  # summer time: 06:30 UTC is 08:30 in Brussels
    ],
)
def test_who_is_on_call_at_level_one(moment: datetime, first: set[str]) -> None:
    assert ROTA.on_call(1, moment) == first
    assert ROTA.on_call(2, moment) == {"chief"}


def test_a_workers_levels_and_off_duty() -> None:
    assert ROTA.levels_of("chief", brussels(2026, 11, 25, 12, 0)) == (2,)
    assert ROTA.levels_of("night", brussels(2026, 11, 25, 12, 0)) == ()
    assert ROTA.level_name(2) == "second" and ROTA.depth == 2


def test_the_demo_network_has_a_complete_policy_for_each_served_agency() -> None:
    network = load_network(DEFAULT_NETWORK)
    assert set(network.dispatched) == set(network.oncall)
    for policy in network.oncall.values():
        assert set(policy.escalate_after) == {"info", "high", "imminent"}


def test_an_on_call_policy_for_an_unknown_agency_is_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    text = DEFAULT_NETWORK.read_text().replace("[oncall.zp-meuse]", "[oncall.zp-nowhere]", 1)
    text = text.replace("oncall.zp-meuse.", "oncall.zp-nowhere.")
    (tmp_path / "network.toml").write_text(
        text.replace('policy = "policy.toml"', f'policy = "{DEFAULT_NETWORK.parent}/policy.toml"')
    )
    with pytest.raises(NetworkError, match="not in the network"):
        load_network(tmp_path / "network.toml")
