"""The sign-in sessions' tables: hashes of their cookies' secrets, and the invitations already exchanged."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from maillage.core.storage.db import json_field


class SignInSession(SQLModel, table=True):
    """Someone signed in on a page (an on-call worker, an operator) for a while: a cookie whose secret changes at
    every refresh. Only hashes are kept; the previous secret is remembered so that its reuse (a stolen cookie
    played after the page moved on) ends the session."""

    __tablename__ = "signin_session"

    id: str = Field(primary_key=True)
    issuer: str = Field(index=True)  # the agency (or the operators' issuer) whose invitation opened it
    subject: str = Field(index=True)  # the worker, or the operator
    scopes: list[str] = json_field()
    secret_sha256: str
    previous_sha256: str | None = None
    rotated_at: datetime
    expires_at: datetime  # no refresh goes beyond it
    revoked_at: datetime | None = None


class UsedInvitation(SQLModel, table=True):
    """A sign-in invitation (a one-time token) already exchanged: never twice."""

    __tablename__ = "signin_used_invitation"

    jti: str = Field(primary_key=True)
    expires_at: datetime


SESSION_TABLES: list[type[SQLModel]] = [SignInSession, UsedInvitation]
