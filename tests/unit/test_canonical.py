"""The fast canonical JSON writes exactly RFC 8785's bytes, so hashes and signatures never change."""

from __future__ import annotations

from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from maillage.domain.canonical import canonical_json
from maillage.domain.vocabulary import Category

pytestmark = pytest.mark.unit

ASCII_KEYS = st.text(alphabet=st.characters(max_codepoint=127), max_size=8)
FAST_LEAVES = (
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text() | st.sampled_from(list(Category))
)
FAST = st.recursive(
    FAST_LEAVES,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ASCII_KEYS, inner, max_size=4),
    max_leaves=30,
)
ANY_LEAVES = st.none() | st.booleans() | st.integers() | st.text() | st.floats(allow_nan=False, allow_infinity=False)
ANY = st.recursive(
    ANY_LEAVES,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4),
    max_leaves=20,
)


def _rfc8785(value: Any) -> bytes | type[Exception]:
    try:
        return rfc8785.dumps(value)
    except Exception as exc:  # the same refusal is what must match
        return type(exc)


@settings(max_examples=500)
@given(FAST)
def test_audit_and_signature_shaped_values_match_rfc8785_byte_for_byte(value: Any) -> None:
    assert canonical_json(value) == rfc8785.dumps(value)


@settings(max_examples=500)
@given(ANY)
def test_any_other_json_value_is_written_or_refused_as_rfc8785_does(value: Any) -> None:
    try:
        written: bytes | type[Exception] = canonical_json(value)
    except Exception as exc:
        written = type(exc)
    assert written == _rfc8785(value)


def test_every_code_point_is_escaped_as_rfc8785_escapes_it() -> None:
    for code_point in [*range(0x0, 0x800), *range(0xE000, 0x10000, 7), *range(0x10000, 0x110000, 997)]:
        text = f"a{chr(code_point)}b"
        assert canonical_json({"v": text}) == rfc8785.dumps({"v": text}), hex(code_point)
