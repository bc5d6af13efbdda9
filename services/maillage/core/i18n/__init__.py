"""Words for people, in their language: message catalogs (gettext `.po`, read with Babel) in French, Dutch,
German and English, and the choice among them from an `Accept-Language` header and its quality weights.

Catalogs live in `locale/<language>/LC_MESSAGES/<domain>.po`, one domain per audience (`maillage`: problem
details, validation messages, pages and CLI lines; `report`: the person's disclosure report; `stats`: the
public figures). Message ids are stable keys (`problem.not-found.title`), never English sentences, so that the
English catalog is a catalog like the others and a test can require every key in every language. Messages use
`str.format` fields: `translate("fr", "erasure.pending", holder="CPAS")`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from string import Formatter
from typing import Any

from babel.messages.pofile import read_po

from maillage.domain.errors import MaillageError

LANGUAGES = ("en", "fr", "nl", "de")
DEFAULT_LANGUAGE = "en"
LOCALE_DIR = Path(__file__).with_name("locale")


def negotiate(accept_language: str | None, *, offered: tuple[str, ...] = LANGUAGES) -> str:
    """The offered language the header prefers most (RFC 9110 §12.5.4): the highest `q` wins, ties go to the
    order the header lists them in, `q=0` refuses a language; `*` stands for any offered language not named.
    Regional variants match their language (`fr-BE` → `fr`). None acceptable: the default."""
    weighted: list[tuple[float, int, str]] = []
    named: set[str] = set()
    wildcard: float | None = None
    for position, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        tag = tag.strip().lower()
        if not tag:
            continue
        quality = _quality(params)
        if tag == "*":
            wildcard = quality
            continue
        language = tag.split("-")[0]
        named.add(language)
        if language in offered and quality > 0:
            weighted.append((-quality, position, language))
    if wildcard:
        weighted += [(-wildcard, 10_000 + i, lang) for i, lang in enumerate(offered) if lang not in named]
    return min(weighted)[2] if weighted else (DEFAULT_LANGUAGE if DEFAULT_LANGUAGE in offered else offered[0])


def environment_language(environ: Mapping[str, str] | None = None) -> str:
    """The language of a command's user-facing lines: `MAILLAGE_LANGUAGE` when it names one offered, else the
    POSIX locale's (the first set of `LC_ALL`, `LC_MESSAGES`, `LANG`: `fr_BE.UTF-8` → `fr`; `C` → English)."""
    env = os.environ if environ is None else environ
    wanted = _language_of_locale(env.get("MAILLAGE_LANGUAGE", ""))
    if wanted in LANGUAGES:
        return wanted
    chosen = next((env[name] for name in ("LC_ALL", "LC_MESSAGES", "LANG") if env.get(name)), "")
    language = _language_of_locale(chosen)
    return language if language in LANGUAGES else DEFAULT_LANGUAGE


def _language_of_locale(value: str) -> str:
    return value.strip().split(".")[0].split("@")[0].replace("-", "_").split("_")[0].lower()


def _quality(params: str) -> float:
    for param in params.split(";"):
        name, _, value = param.strip().partition("=")
        if name.strip().lower() == "q":
            try:
                return min(1.0, max(0.0, float(value)))
            except ValueError:
                return 0.0
    return 1.0


@cache
def catalog(language: str, domain: str = "maillage") -> Mapping[str, str]:
    """Every message of one domain in one language, by key (read once)."""
    path = LOCALE_DIR / language / "LC_MESSAGES" / f"{domain}.po"
    if not path.exists():
        return {}
    with path.open("rb") as po:
        messages = read_po(po, locale=language)
    return {str(m.id): str(m.string) for m in messages if m.id and m.string}


def translate(language: str, key: str, /, domain: str = "maillage", **fields: Any) -> str:
    """The message `key` in `language` (English when that catalog lacks it, the key itself when none has it),
    its fields filled in."""
    text = catalog(language, domain).get(key) or catalog(DEFAULT_LANGUAGE, domain).get(key) or key
    # A field the caller did not give stays as written: a message shown a little raw beats a refusal turned 500.
    return text.format_map(_Kept(fields)) if fields else text


def describe(error: MaillageError, language: str = DEFAULT_LANGUAGE) -> str:
    """What a refusal says, in `language`: English by default, for a log line or an exception's text."""
    return translate(language, error.key, **error.fields)


class _Kept(dict[str, Any]):
    def __missing__(self, name: str) -> str:
        return "{" + name + "}"


def message_fields(text: str) -> frozenset[str]:
    """The names of the `str.format` fields a message fills in (`{count}`, `{scope}`)."""
    return frozenset(name.split(".")[0].split("[")[0] for _, name, _, _ in Formatter().parse(text) if name)


def domains() -> list[str]:
    """The catalog domains shipped (those of the default language)."""
    return sorted(p.stem for p in (LOCALE_DIR / DEFAULT_LANGUAGE / "LC_MESSAGES").glob("*.po"))
