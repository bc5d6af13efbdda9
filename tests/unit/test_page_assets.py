"""The web pages' scripts and stylesheets: served by name from their own folder, nothing else."""

from __future__ import annotations

from pathlib import Path

import pytest

import maillage.dispatcher.api
import maillage.monitor.api
from maillage.core.web.http import ASSET_TYPES, asset
from maillage.domain.errors import NotFound

pytestmark = pytest.mark.unit

FOLDERS = {"oncall": Path(maillage.dispatcher.api.STATIC), "dashboard": Path(maillage.monitor.api.STATIC)}


@pytest.mark.parametrize("page", sorted(FOLDERS))
def test_each_page_has_its_script_and_stylesheet_typed_and_never_cached(page: str) -> None:
    for suffix, media_type in ASSET_TYPES.items():
        response = asset(FOLDERS[page], page + suffix)
        assert response.media_type == media_type
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize(
    "name",
    [
        "oncall.html",
        "..",
        "../api.py",
        "../static/oncall.js",
        "../../monitor/static/dashboard.js",
        "nothing.js",
        ".js",
        "",
    ],
)
def test_a_name_that_is_not_one_of_the_folders_assets_is_not_found(name: str) -> None:
    with pytest.raises(NotFound):
        asset(FOLDERS["oncall"], name)
