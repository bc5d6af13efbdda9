"""The web pages' scripts and stylesheets: served by name from their own folder, nothing else."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

import maillage.dispatcher.api
import maillage.monitor.api
from maillage.core.web.http import ASSET_TYPES, PAGE_CSP, SHARED_STATIC, asset
from maillage.core.web.http import page as maillage_page
from maillage.domain.errors import NotFound

pytestmark = pytest.mark.unit

FOLDERS = {"oncall": Path(maillage.dispatcher.api.STATIC), "dashboard": Path(maillage.monitor.api.STATIC)}
FOLDERS["stats"] = Path(maillage.monitor.api.STATIC)  # the Pôles' figures: the monitor's second page


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


SHARED = ["common.js", "common.css", "common.messages.json"]


@pytest.mark.parametrize("page", sorted(FOLDERS))
def test_each_page_gets_the_shared_script_stylesheet_and_messages_and_its_own_messages(page: str) -> None:
    for name in [*SHARED, page + ".messages.json"]:
        response = asset(FOLDERS[page], name)
        assert response.media_type == {**ASSET_TYPES, ".json": "application/json"}[Path(name).suffix]
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["x-content-type-options"] == "nosniff"
    assert Path(asset(FOLDERS[page], "common.js").path) == SHARED_STATIC / "common.js"


def test_a_services_own_file_comes_before_the_shared_one_of_the_same_name(tmp_path: Path) -> None:
    (tmp_path / "common.js").write_text("// this service's own\n")
    assert Path(asset(tmp_path, "common.js").path) == tmp_path / "common.js"
    assert Path(asset(tmp_path, "common.css").path) == SHARED_STATIC / "common.css"


@pytest.mark.parametrize("name", ["page.html", "../static/common.js", "../web/static/common.js", "common.messages"])
def test_a_shared_name_that_is_not_an_asset_is_not_found(name: str) -> None:
    with pytest.raises(NotFound):
        asset(FOLDERS["dashboard"], name)


def messages(page: str) -> dict[str, Any]:
    return {
        "common": json.loads((SHARED_STATIC / "common.messages.json").read_text(encoding="utf-8")),
        "page": json.loads((FOLDERS[page] / f"{page}.messages.json").read_text(encoding="utf-8")),
    }


def keys(table: dict[str, Any], prefix: str = "") -> set[str]:
    return {
        path
        for key, value in table.items()
        for path in (keys(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}"})
    }


def served_page(page: str) -> str:
    return bytes(maillage_page(FOLDERS[page] / f"{page}.html").body).decode()


@pytest.mark.parametrize("page", sorted(FOLDERS))
def test_each_page_says_the_same_things_in_its_four_languages_and_has_every_label_it_shows(page: str) -> None:
    tables = messages(page)
    for table in tables.values():
        assert sorted(table) == ["de", "en", "fr", "nl"]
        assert {lang: keys(words) for lang, words in table.items()} == dict.fromkeys(table, keys(table["en"]))
    known = keys(tables["common"]["en"]) | keys(tables["page"]["en"])
    html = served_page(page)
    labels = set(re.findall(r'data-i18n(?:-aria)?="([^"]+)"', html)) | set(re.findall(r'data-help="([^"]+)"', html))
    assert labels and labels <= known, labels - known


@pytest.mark.parametrize("page", sorted(FOLDERS))
def test_each_page_is_its_own_markup_in_the_shared_frame_loading_its_own_files(page: str) -> None:
    response = maillage_page(FOLDERS[page] / f"{page}.html")
    html = served_page(page)
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["content-security-policy"] == PAGE_CSP
    assert (FOLDERS[page] / f"{page}.html").read_text(encoding="utf-8").strip() in html
    assert html.count('data-testid="lang-select"') == html.count('data-testid="sign-in"') == 1
    assert '<link rel="stylesheet" href="/static/common.css">' in html
    assert f'<link rel="stylesheet" href="/static/{page}.css">' in html
    assert f'<script type="module" src="/static/{page}.js"></script>' in html
    assert re.search(r"\$\w", html) is None  # every placeholder of the frame filled
