"""The batch route's shortcut (``plainly_valid_item``) only ever accepts what the serializer accepts.

Items it accepts skip DRF's validation; any item it declines goes through ``IngestSerializer`` as
before, so the errors an API client sees are the serializer's, word for word.
"""

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from rest_framework.exceptions import ValidationError

from tests.api.conftest import SEED_RECORD
from users_app.serializers import IngestSerializer, plainly_valid_item

SEED_DATA = SEED_RECORD["data"]

# Near the edges: whitespace, NUL, a lone surrogate, '|', and lengths around the limits.
texts = st.one_of(
    st.text(alphabet="ab |\t\x00\ud800é", max_size=6),
    st.sampled_from(["", " x", "x ", "a" * 100, "a" * 101, "a" * 200, "a" * 201, "a" * 255, "a" * 256]),
)
# Mostly what a record holds, sometimes what it must not (lists and objects, true, NaN, huge numbers).
plain_scalars = st.one_of(
    st.none(), texts, st.integers(-(2**40), 2**40), st.floats(allow_nan=False, allow_infinity=False)
)
scalars = st.one_of(
    plain_scalars,
    plain_scalars,
    plain_scalars,
    st.sampled_from([True, False, float("nan"), float("inf"), [], [1], {}, {"a": 1}]),
    st.builds(pow, st.just(2), st.just(4000)),  # a 1,205-digit integer
)
group_fields = ["country", "state", "city", "age", "gender", "income", "education"]
groups = st.one_of(st.none(), st.dictionaries(st.sampled_from([*group_fields, "zip"]), scalars), scalars)
interests = st.one_of(
    st.none(),
    texts,
    st.lists(texts, max_size=4),
    st.lists(st.just("x"), min_size=99, max_size=102),
    st.lists(st.sampled_from(["x", "y" * 101]), max_size=3),
    scalars,
)
# Extra fields: kept as sent, checked only for what the database cannot store and for size.
extras = st.recursive(
    plain_scalars | st.just(float("nan")),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
)
records = st.fixed_dictionaries(
    {"created_at": scalars},
    optional={
        **dict.fromkeys(["cookie", "email", "phone_number", *group_fields], scalars),
        "location": groups,
        "demographics": groups,
        "interests": interests,
        "notes": extras,
        "contry": extras,
        "k" * 256: extras,
    },
)
items = st.one_of(
    st.fixed_dictionaries({"data": records}, optional={"message_id": st.one_of(texts, st.integers(), st.none())}),
    st.dictionaries(st.sampled_from(["data", "message_id", "extra"]), st.one_of(records, scalars)),
    scalars,
)


@settings(max_examples=3000, deadline=None)
@given(items)
@example(SEED_RECORD)
@example({**SEED_RECORD, "message_id": "m-1"})
def test_every_item_the_shortcut_accepts_the_serializer_accepts_with_the_same_message_id(item):
    if plainly_valid_item(item):
        try:
            validated = IngestSerializer().run_validation(item)
        except ValidationError as exc:
            pytest.fail(f"the serializer refuses it: {exc.detail}")
        assert validated.get("message_id") == item.get("message_id")


@pytest.mark.parametrize(
    "item",
    [
        SEED_RECORD,
        {"data": SEED_DATA, "message_id": "order-17"},
        {"data": {"cookie": "c1", "email": "a@example.com", "created_at": "1/2/2025 10:00", "age": 30,
                  "interests": "Tech|Travel", "notes": {"source": "crm"}}},
    ],
)  # fmt: skip
def test_the_usual_shapes_take_the_shortcut(item):
    assert plainly_valid_item(item)


@pytest.mark.parametrize(
    "item",
    [
        {"data": SEED_DATA, "message_id": " order-17"},  # the serializer strips it
        {"data": SEED_DATA, "message_id": 17},  # the serializer makes it text
        {"data": SEED_DATA, "message_id": None},
        {"data": {**SEED_DATA, "created_at": None}},
        {"data": {**SEED_DATA, "location": {"contry": "India"}}},
        {"data": {**SEED_DATA, "age": True}},
        {"data": {**SEED_DATA, "notes": "\x00"}},
        {"data": SEED_DATA, "extra": 1},
    ],
)
def test_items_the_serializer_changes_or_refuses_are_left_to_it(item):
    assert not plainly_valid_item(item)
