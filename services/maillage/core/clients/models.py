"""The registered clients' table: who may get this agency's tokens without holding its private key."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from maillage.core.storage.db import json_field


class ClientRow(SQLModel, table=True):
    """A partner system (a case-management system, say) allowed to get tokens of this agency with the
    client-credentials grant (RFC 6749 §4.4), for these scopes at most. Its secret is shown once, when it is
    registered; only a salted scrypt hash of it is kept."""

    __tablename__ = "oauth_client"

    client_id: str = Field(primary_key=True)
    name: str  # what the agency calls it: "Dossier social (Acme)", never a person
    secret_hash: str
    scopes: list[str] = json_field()
    created_at: datetime
    revoked_at: datetime | None = None


CLIENT_TABLES: list[type[SQLModel]] = [ClientRow]
