"""Pages of a list: every list an API gives is bounded, and the next page is asked for with an opaque cursor."""

from __future__ import annotations

import base64
from typing import Annotated

from fastapi import Query

from maillage.domain.errors import InvalidRequest

MAX_PAGE = 500

Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description="At most this many items in the page.")]
Cursor = Annotated[str | None, Query(max_length=64, description="The `next_cursor` of the previous page.")]


def encode_cursor(position: int) -> str:
    return base64.urlsafe_b64encode(str(position).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int:
    """The position after which the page starts (0: from the start)."""
    if not cursor:
        return 0
    try:
        return int(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode())
    except ValueError:
        raise InvalidRequest("problem.validation.cursor") from None


def next_cursor(positions: list[int], *, limit: int) -> str | None:
    """The cursor of the page after this one, or None when this page was the last."""
    return encode_cursor(positions[-1]) if len(positions) == limit else None


def encode_key(key: str) -> str:
    """The cursor after a string key (a time-ordered id: UUIDv7)."""
    return base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")


def decode_key(cursor: str | None) -> str:
    """The key after which the page starts ("": from the start)."""
    if not cursor:
        return ""
    try:
        key = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True).decode()
    except ValueError:
        raise InvalidRequest("problem.validation.cursor") from None
    if not key or not key.isprintable():
        raise InvalidRequest("problem.validation.cursor")
    return key


def next_key_cursor(keys: list[str], *, limit: int) -> str | None:
    return encode_key(keys[-1]) if len(keys) == limit else None
