"""Who an event's recipients are: named agencies wherever they work, a named sector's agencies of the event's Pôle,
never the sender — the same answer, looked up, as a search of every agency of the network gives."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from maillage.core.config.network import Network, load_network
from maillage.domain.disclosure import Recipient
from maillage.domain.vocabulary import Sector

DEFAULT = Path(__file__).resolve().parents[2] / "services" / "maillage" / "defaults" / "network.toml"
POLES = ("liege", "namur", "mons")
SECTORS = tuple(s.value for s in Sector)


def network_of(agencies: list[dict[str, Any]]) -> Network:
    base = load_network(DEFAULT).model_dump()
    return Network.model_validate({**base, "agencies": agencies, "oncall": {}, "dispatcher": {"agencies": []}})


def searched(network: Network, recipients: tuple[str, ...], *, sender: str, pole: str | None) -> tuple[Recipient, ...]:
    """The rule as it reads: every agency of the network looked at for every recipient named."""
    chosen: dict[str, Recipient] = {}
    for token in recipients:
        for agency in network.agencies:
            named = token == agency.id
            in_sector = token == agency.sector.value and (pole is None or pole in agency.poles)
            if (named or in_sector) and agency.id != sender:
                chosen.setdefault(agency.id, Recipient(agency_id=agency.id, sector=agency.sector))
    return tuple(chosen.values())


agencies = st.lists(
    st.tuples(st.sampled_from(SECTORS), st.lists(st.sampled_from(POLES), unique=True, max_size=3)),
    min_size=1,
    max_size=40,
).map(
    lambda specs: [
        {"id": f"agency-{i}", "name": f"Agency {i}", "sector": sector, "poles": poles, "port": 20000 + i}
        for i, (sector, poles) in enumerate(specs)
    ]
)


@settings(max_examples=300, deadline=None)
@given(
    agencies=agencies,
    picks=st.lists(st.integers(min_value=0, max_value=45), max_size=6),
    sectors=st.lists(st.sampled_from([*SECTORS, "nobody"]), max_size=4),
    sender=st.integers(min_value=0, max_value=45),
    pole=st.sampled_from([None, *POLES]),
    data=st.data(),
)
def test_recipients_looked_up_are_those_a_search_of_the_whole_network_finds(
    agencies: list[dict[str, Any]], picks: list[int], sectors: list[str], sender: int, pole: str | None, data: Any
) -> None:
    network = network_of(agencies)
    tokens = data.draw(st.permutations([*(f"agency-{i}" for i in picks), *sectors]))
    recipients = tuple(tokens)

    found = network.resolve(recipients, sender=f"agency-{sender}", pole=pole)

    assert found == searched(network, recipients, sender=f"agency-{sender}", pole=pole)


def test_a_sector_reaches_its_agencies_of_the_pole_a_named_agency_wherever_it_works_never_the_sender() -> None:
    network = network_of(
        [
            {"id": "zone-liege", "name": "Zone Liège", "sector": "police", "poles": ["liege"], "port": 20001},
            {"id": "zone-namur", "name": "Zone Namur", "sector": "police", "poles": ["namur"], "port": 20002},
            {"id": "refuge", "name": "Refuge", "sector": "victim_support", "poles": ["liege"], "port": 20003},
            {"id": "cpas", "name": "CPAS", "sector": "social", "poles": ["namur"], "port": 20004},
        ]
    )

    found = network.resolve(("police", "cpas", "refuge", "social", "police"), sender="refuge", pole="liege")

    assert [r.agency_id for r in found] == ["zone-liege", "cpas"]
    assert network.resolve(("police",), sender="refuge", pole=None) == (
        Recipient(agency_id="zone-liege", sector=Sector.POLICE),
        Recipient(agency_id="zone-namur", sector=Sector.POLICE),
    )
