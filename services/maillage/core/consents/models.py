"""The columns of a consent's terms, declared once: the agency's table of the consents it registered and the
gateway's table of the consents it enforces both extend them (each its own table, in its own database)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON
from sqlmodel import Field, SQLModel

from maillage.core.storage.db import json_field


class ConsentTerms(SQLModel):
    """What a `consent.granted` event states: whose data, which categories, to whom, for what, until when."""

    consent_id: str = Field(primary_key=True)
    subject_ref: str = Field(index=True)
    categories: list[str] = json_field()
    recipients: list[str] = json_field()
    purposes: list[str] = json_field()
    valid_until: datetime | None = None
    # Agencies allowed to disclose under it besides the registering one; none (or a row older than this
    # column): the registering agency alone.
    disclosers: list[str] | None = Field(default=None, sa_type=JSON, nullable=True)
