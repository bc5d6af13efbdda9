"""Every error a client may see has a title in each language of the network, from the catalogs."""

from __future__ import annotations

import pytest

from maillage.core.i18n import LANGUAGES, catalog
from maillage.domain import errors

pytestmark = pytest.mark.unit


def _codes() -> set[str]:
    found: set[str] = set()
    todo = [errors.MaillageError]
    while todo:
        kind = todo.pop()
        found.add(kind.code)
        todo.extend(kind.__subclasses__())
    return found


def test_every_error_type_has_a_title_in_english_french_dutch_and_german() -> None:
    missing = sorted(
        f"{code}:{lang}" for code in _codes() for lang in LANGUAGES if not catalog(lang).get(f"problem.{code}.title")
    )

    assert missing == []
