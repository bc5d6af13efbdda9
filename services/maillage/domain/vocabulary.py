"""The closed vocabularies of the domain: sectors, roles, data categories, purposes, legal bases."""

from __future__ import annotations

from enum import StrEnum


class Sector(StrEnum):
    VICTIM_SUPPORT = "victim_support"
    PERPETRATOR_SUPPORT = "perpetrator_support"
    POLICE = "police"
    JUSTICE = "justice"
    HEALTH = "health"
    SOCIAL = "social"
    CHILD_PROTECTION = "child_protection"
    HOUSING = "housing"
    # The Pôle's own service: its consultation desk and the case conferences it convenes.
    RESOURCE_HUB = "resource_hub"


class Role(StrEnum):
    VICTIM = "victim"
    PERPETRATOR = "perpetrator"
    CHILD = "child"
    OTHER = "other"


class Category(StrEnum):
    IDENTITY = "identity"
    CONTACT = "contact"
    LOCATION = "location"
    CHILDREN = "children"
    RISK = "risk"
    JUDICIAL = "judicial"
    HEALTH = "health"
    NARRATIVE = "narrative"


ALL_CATEGORIES: frozenset[Category] = frozenset(Category)


class Purpose(StrEnum):
    REFERRAL = "referral"
    SAFETY_PLANNING = "safety_planning"
    RISK_ASSESSMENT = "risk_assessment"
    CASE_CONFERENCE = "case_conference"


class LegalBasis(StrEnum):
    CONSENT = "consent"
    DANGER = "danger"
    CASE_CONFERENCE = "case_conference"
    LEGAL_OBLIGATION = "legal_obligation"
    # An anonymous consultation discloses no one: no identity, contact or location ever travels in it.
    ANONYMOUS = "anonymous"


class Severity(StrEnum):
    INFO = "info"
    HIGH = "high"
    IMMINENT = "imminent"
