"""The ingest routes' JSON renderer writes what DRF's JSONRenderer writes."""

import pytest
from django.utils.translation import gettext_lazy
from hypothesis import given
from hypothesis import strategies as st
from rest_framework.renderers import JSONRenderer

from analytics_site.api import OrjsonRenderer

# What an answer holds: text (any, but lone surrogates, which no UTF-8 answer can carry), whole
# numbers, booleans, null, lists and objects. Fractions are left out: orjson spells some
# differently (1e16 where json writes 1e+16), the same value either way.
TEXT = st.text(alphabet=st.characters(exclude_categories=("Cs",)))
VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**64 - 1) | TEXT,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(TEXT, children, max_size=5),
    max_leaves=30,
)


@given(VALUES)
def test_same_bytes_as_drf_for_answer_values(value):
    assert OrjsonRenderer().render(value) == JSONRenderer().render(value)


def test_javascript_line_separators_are_escaped_as_drf_does():
    value = {"warnings": ["a\u2028b\u2029c"]}
    assert OrjsonRenderer().render(value) == JSONRenderer().render(value) == b'{"warnings":["a\\u2028b\\u2029c"]}'


@pytest.mark.parametrize(
    "value",
    [
        {"big": 2**70},  # orjson refuses it: DRF's renderer writes the whole answer
        {"detail": gettext_lazy("Not found.")},  # DRF's encoder turns it into text for orjson
        {"counts": {1: "one"}},  # keys that are not text
    ],
    ids=["integer beyond 64 bits", "lazy text", "whole-number keys"],
)
def test_what_orjson_does_not_write_itself_comes_out_as_drf_writes_it(value):
    assert OrjsonRenderer().render(value) == JSONRenderer().render(value)


def test_indented_answers_are_drf_s():
    value = {"status": "created", "warnings": []}
    media_type = "application/json; indent=4"
    rendered = OrjsonRenderer().render(value, media_type, {})
    assert rendered == JSONRenderer().render(value, media_type, {})
    assert b'\n    "status": "created"' in rendered


def test_no_data_is_an_empty_body():
    assert OrjsonRenderer().render(None) == b""
