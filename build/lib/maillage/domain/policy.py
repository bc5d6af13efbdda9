"""The disclosure policy, loaded from a versioned TOML file: ceilings per sector and role, the danger rule."""

from __future__ import annotations

import hashlib
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass

from maillage.domain.vocabulary import ALL_CATEGORIES, Category, Role, Sector


class PolicyError(ValueError):
    """The policy file is not usable; the message names the offending entry."""


@dataclass(frozen=True)
class DangerRule:
    """Art. 458bis: who an alert may reach without consent, and with which categories at most."""

    sectors: frozenset[Sector]
    sectors_when_children: frozenset[Sector]
    categories: frozenset[Category]

    def opens(self, sector: Sector, *, has_children: bool) -> bool:
        return sector in self.sectors or (has_children and sector in self.sectors_when_children)


@dataclass(frozen=True)
class Policy:
    version: str
    sha256: str
    ceilings: Mapping[tuple[Sector, Role], frozenset[Category]]
    danger: DangerRule
    consultation_never: frozenset[Category]

    def ceiling(self, sector: Sector, role: Role) -> frozenset[Category]:
        return self.ceilings.get((sector, role), frozenset())


def _categories(values: list[str], *, where: str) -> frozenset[Category]:
    if values == ["*"]:
        return ALL_CATEGORIES
    try:
        return frozenset(Category(v) for v in values)
    except ValueError as exc:
        raise PolicyError(f"{where}: {exc}") from exc


def parse_policy(raw: bytes) -> Policy:
    try:
        doc = tomllib.loads(raw.decode())
        ceilings: dict[tuple[Sector, Role], frozenset[Category]] = {}
        for sector_name, by_role in doc["ceiling"].items():
            sector = Sector(sector_name)
            for role_name, cats in by_role.items():
                ceilings[(sector, Role(role_name))] = _categories(cats, where=f"ceiling.{sector_name}")
        danger = doc["danger"]
        rule = DangerRule(
            sectors=frozenset(Sector(s) for s in danger["sectors"]),
            sectors_when_children=frozenset(Sector(s) for s in danger.get("sectors_when_children", [])),
            categories=_categories(danger["categories"], where="danger.categories"),
        )
        never = _categories(doc.get("consultation", {}).get("never", []), where="consultation.never")
        return Policy(
            version=str(doc["version"]),
            sha256=hashlib.sha256(raw).hexdigest(),
            ceilings=ceilings,
            danger=rule,
            consultation_never=never,
        )
    except (KeyError, ValueError, TypeError, AttributeError, tomllib.TOMLDecodeError) as exc:
        # TypeError/AttributeError: a value of the wrong shape (a number where a list or table belongs).
        raise PolicyError(f"invalid policy: {exc}") from exc
