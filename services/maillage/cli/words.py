"""The command's words for the person at the terminal, from the catalogs, in their language: `MAILLAGE_LANGUAGE`,
else the locale's (`LC_ALL`, `LC_MESSAGES`, `LANG`), else English."""

from __future__ import annotations

from typing import Any

from maillage.core.i18n import describe, environment_language, translate
from maillage.domain.errors import MaillageError


def phrase(key: str, /, **fields: Any) -> str:
    """The message `key` in the terminal's language, its fields filled in (plain text: escape it for rich)."""
    return translate(environment_language(), key, **fields)


def refusal(error: MaillageError) -> str:
    """What a refused request says, in the terminal's language."""
    return describe(error, environment_language())
