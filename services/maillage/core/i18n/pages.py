"""The web pages' messages, generated from the catalogs (keys `page.<page>.…`) into the JSON files the pages load:
the catalogs are the single source, and a test fails when a checked-in file is stale (`maillage messages`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from maillage.core.i18n import LANGUAGES, catalog

PACKAGE = Path(__file__).resolve().parents[2]
# Each page's messages file, beside its script: `common` is shared by every page.
PAGES = {
    "common": PACKAGE / "core" / "web" / "static" / "common.messages.json",
    "oncall": PACKAGE / "dispatcher" / "static" / "oncall.messages.json",
    "dashboard": PACKAGE / "monitor" / "static" / "dashboard.messages.json",
}


def page_messages(page: str) -> dict[str, dict[str, Any]]:
    """Language → the page's messages, nested by the dotted parts of their keys (`page.oncall.conn.live`)."""
    prefix = f"page.{page}."
    return {
        language: _nested({k[len(prefix) :]: v for k, v in catalog(language).items() if k.startswith(prefix)})
        for language in LANGUAGES
    }


def _nested(flat: dict[str, str]) -> dict[str, Any]:
    # A code that has dots itself (an event type) follows a colon: `page.dashboard.types:consent.granted`.
    tree: dict[str, Any] = {}
    for key in sorted(flat):
        path, colon, code = key.partition(":")
        *parents, leaf = path.split(".") + ([code] if colon else [])
        node = tree
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = flat[key]
    return tree


def rendered() -> dict[Path, bytes]:
    """Each page's messages file and its content."""
    return {
        path: (json.dumps(page_messages(page), ensure_ascii=False, indent=2) + "\n").encode()
        for page, path in PAGES.items()
    }


def stale() -> list[Path]:
    return [path for path, content in rendered().items() if not path.is_file() or path.read_bytes() != content]


def write() -> list[Path]:
    written = stale()
    for path in written:
        path.write_bytes(rendered()[path])
    return written
