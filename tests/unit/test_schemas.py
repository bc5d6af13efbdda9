"""The checked-in JSON Schemas are what the event models generate, and they carry each field's category."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from maillage.cli.schemas import rendered, stale
from maillage.domain.events import CATEGORY_KEY
from maillage.domain.vocabulary import Category

pytestmark = pytest.mark.unit

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas"  # the checkout's, as CI checks it


def test_schemas_folder_is_current() -> None:
    assert stale(SCHEMA_DIR) == [], "run `maillage schemas` and commit schemas/"


def test_a_stale_schema_is_noticed(tmp_path: Path) -> None:
    for name, content in rendered().items():
        (tmp_path / name).write_bytes(content)
    (tmp_path / "maillage.referral.created.v1.json").write_bytes(b"{}\n")
    (tmp_path / "maillage.leftover.v0.json").write_bytes(b"{}\n")

    assert stale(tmp_path) == ["maillage.leftover.v0.json", "maillage.referral.created.v1.json"]


def test_referral_schema_tags_all_eight_categories() -> None:
    schema = orjson.loads((SCHEMA_DIR / "maillage.referral.created.v1.json").read_bytes())
    tagged = {prop[CATEGORY_KEY] for prop in schema["properties"].values() if CATEGORY_KEY in prop}
    assert tagged == {c.value for c in Category}
