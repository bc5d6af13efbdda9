"""The policy file: the default matches DESIGN.md's table; a broken file is refused with PolicyError."""

from __future__ import annotations

import pytest

from maillage.core.config.settings import DEFAULT_NETWORK
from maillage.domain.policy import Policy, PolicyError, parse_policy
from maillage.domain.vocabulary import ALL_CATEGORIES, Category, Role, Sector

pytestmark = pytest.mark.unit

DEFAULT_POLICY = DEFAULT_NETWORK.parent / "policy.toml"
ALL = "all eight"


def cats(cell: str) -> frozenset[Category]:
    if cell == ALL:
        return ALL_CATEGORIES
    return frozenset(Category(c.strip()) for c in cell.split(",") if c.strip() not in ("", "·"))


# DESIGN.md, "Default policy": recipient sector → (victim, perpetrator, child, other).
DESIGN_TABLE = {
    Sector.VICTIM_SUPPORT: (
        ALL,
        "identity, risk, judicial, narrative",
        "identity, children, risk, narrative",
        "identity",
    ),
    Sector.PERPETRATOR_SUPPORT: ("risk", "identity, contact, risk, judicial, health, narrative", "·", "·"),
    Sector.POLICE: (
        "identity, contact, location, children, risk, judicial",
        "identity, contact, location, risk, judicial",
        "identity, children, risk",
        "identity",
    ),
    Sector.JUSTICE: (
        "identity, children, risk, judicial",
        "identity, risk, judicial",
        "identity, children, risk",
        "identity",
    ),
    Sector.HEALTH: (
        "identity, contact, health, risk",
        "identity, health, risk",
        "identity, children, health",
        "identity",
    ),
    Sector.SOCIAL: ("identity, contact, children, narrative", "identity, contact", "identity, children", "identity"),
    Sector.CHILD_PROTECTION: ("identity, contact, children, risk", "identity, risk, judicial", ALL, "identity"),
    Sector.HOUSING: ("identity, contact, children", "identity", "·", "·"),
}
ROLES = (Role.VICTIM, Role.PERPETRATOR, Role.CHILD, Role.OTHER)
CELLS = [(sector, role, cats(row[i])) for sector, row in DESIGN_TABLE.items() for i, role in enumerate(ROLES)]


@pytest.fixture(scope="module")
def default_policy() -> Policy:
    return parse_policy(DEFAULT_POLICY.read_bytes())


@pytest.mark.parametrize(("sector", "role", "expected"), CELLS, ids=[f"{s}-{r}" for s, r, _ in CELLS])
def test_default_ceiling_matches_the_design_table(
    default_policy: Policy,
    sector: Sector,
    role: Role,
    expected: frozenset[Category],
) -> None:
    assert default_policy.ceiling(sector, role) == expected


def test_perpetrator_programme_may_only_ever_receive_a_victims_risk(default_policy: Policy) -> None:
    assert default_policy.ceiling(Sector.PERPETRATOR_SUPPORT, Role.VICTIM) == {Category.RISK}


def test_default_danger_rule_opens_police_justice_victim_support_and_child_protection_for_children(
    default_policy: Policy,
) -> None:
    danger = default_policy.danger
    assert danger.categories == {
        Category.IDENTITY,
        Category.CONTACT,
        Category.LOCATION,
        Category.CHILDREN,
        Category.RISK,
    }
    for sector in (Sector.POLICE, Sector.JUSTICE, Sector.VICTIM_SUPPORT):
        assert danger.opens(sector, has_children=False)
    assert danger.opens(Sector.CHILD_PROTECTION, has_children=True)
    assert not danger.opens(Sector.CHILD_PROTECTION, has_children=False)
    for sector in (Sector.PERPETRATOR_SUPPORT, Sector.HEALTH, Sector.SOCIAL, Sector.HOUSING):
        assert not danger.opens(sector, has_children=True)


def test_consultation_never_carries_identity_contact_or_location(default_policy: Policy) -> None:
    assert default_policy.consultation_never == {Category.IDENTITY, Category.CONTACT, Category.LOCATION}


def test_policy_hash_is_the_files_sha256_so_any_change_shows_in_the_audit(default_policy: Policy) -> None:
    raw = DEFAULT_POLICY.read_bytes()
    assert parse_policy(raw).sha256 == default_policy.sha256
    assert parse_policy(raw + b"\n# reviewed\n").sha256 != default_policy.sha256


VALID = """
version = "1"
[ceiling.police]
victim = ["identity"]
[danger]
sectors = ["police"]
categories = ["identity"]
"""

BROKEN = {
    "not toml": "version = \n[ceiling",
    "not utf-8": b"version = '\xff'",
    "no version": VALID.replace('version = "1"', ""),
    "no danger rule": VALID.split("[danger]")[0],
    "no ceiling": VALID.replace('[ceiling.police]\nvictim = ["identity"]', ""),
    "unknown category": VALID.replace('victim = ["identity"]', 'victim = ["identity", "religion"]'),
    "unknown sector": VALID.replace("[ceiling.police]", "[ceiling.astrology]"),
    "unknown role": VALID.replace('victim = ["identity"]', 'witness = ["identity"]'),
    "unknown danger sector": VALID.replace('sectors = ["police"]', 'sectors = ["neighbours"]'),
    "categories not a list": VALID.replace('victim = ["identity"]', 'victim = "identity"'),
    "categories a number": VALID.replace('victim = ["identity"]', "victim = 3"),
    "sector not a table": VALID.replace('[ceiling.police]\nvictim = ["identity"]', "ceiling = 3"),
    "role not a table": VALID.replace('[ceiling.police]\nvictim = ["identity"]', "ceiling = { police = 3 }"),
    "danger sectors a number": VALID.replace('sectors = ["police"]', "sectors = 1"),
}


def test_a_minimal_policy_loads() -> None:
    assert parse_policy(VALID.encode()).ceiling(Sector.POLICE, Role.VICTIM) == {Category.IDENTITY}


@pytest.mark.parametrize("raw", list(BROKEN.values()), ids=list(BROKEN))
def test_broken_policy_file_is_refused_with_policy_error(raw: str | bytes) -> None:
    with pytest.raises(PolicyError):
        parse_policy(raw if isinstance(raw, bytes) else raw.encode())


def test_policy_error_names_the_offending_entry() -> None:
    with pytest.raises(PolicyError, match="religion"):
        parse_policy(BROKEN["unknown category"].encode())
