"""The ingest routes against the bad input corpus: a 4xx naming the problem (never a 500), nothing half-stored.

A request refused as a whole (too big, too deep, not JSON, not an object, wrong content type)
leaves every table exactly as it was. In a batch, a bad item is rejected with its errors and the
good items around it are stored, as the route promises.
"""

import json

import pytest

from tests.api.conftest import SEED_RECORD
from tests.bad_input import MEGABYTE, data_snapshot, seed_existing_data
from users_app.api import MAX_BATCH_BYTES, MAX_INGEST_BYTES
from users_app.models import RawRecord
from users_app.serializers import MAX_RECORD_DEPTH, NOT_FINITE, TOO_BIG, TOO_DEEP

pytestmark = pytest.mark.django_db

NESTED_TOO_DEEPLY = {"detail": "JSON nested too deeply."}


def record_with(cookie: str = "bad-cookie", **fields) -> dict:
    return {"data": {**SEED_RECORD["data"], "cookie": cookie, "email": f"{cookie}@example.com", **fields}}


def json_with(placeholder_value: str, cookie: str = "bad-cookie") -> str:
    """A record whose ``extra`` field is the given raw JSON text (for what json.dumps cannot write)."""
    return json.dumps(record_with(cookie, extra="PLACEHOLDER")).replace('"PLACEHOLDER"', placeholder_value)


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.fixture
def seeded(tmp_path):
    seed_existing_data(tmp_path)
    return data_snapshot()


# Requests refused as a whole: (id, route, body, content type, status, answer).
REFUSED = [
    (
        "oversized-body",
        "/api/ingest",
        json.dumps(record_with(notes="x" * (MAX_INGEST_BYTES + 1))),
        "application/json",
        413,
        {"detail": f"Request body over {MAX_INGEST_BYTES} bytes."},
    ),
    (
        "oversized-batch",
        "/api/ingest/batch",
        json.dumps({"batch": [record_with(notes="x" * MAX_BATCH_BYTES)]}),
        "application/json",
        413,
        {"detail": f"Request body over {MAX_BATCH_BYTES} bytes."},
    ),
    (
        "100000-interests",
        "/api/ingest",
        json.dumps(record_with(interests=[f"i{n}" for n in range(100_000)])),
        "application/json",
        413,
        {"detail": f"Request body over {MAX_INGEST_BYTES} bytes."},
    ),
    (
        "1-mb-interests-text",
        "/api/ingest",
        json.dumps(record_with(interests="x" * MEGABYTE)),
        "application/json",
        413,
        {"detail": f"Request body over {MAX_INGEST_BYTES} bytes."},
    ),
    ("10000-deep-body", "/api/ingest", nested(10_000), "application/json", 400, NESTED_TOO_DEEPLY),
    ("10000-deep-data", "/api/ingest", '{"data": ' + nested(10_000) + "}", "application/json", 400, NESTED_TOO_DEEPLY),
    (
        "10000-deep-objects",
        "/api/ingest",
        json_with('{"a":' * 10_000 + "1" + "}" * 10_000),
        "application/json",
        400,
        NESTED_TOO_DEEPLY,
    ),
    (
        "10000-deep-batch-item",
        "/api/ingest/batch",
        '{"batch": [' + json_with(nested(10_000)) + "]}",
        "application/json",
        400,
        NESTED_TOO_DEEPLY,
    ),
    (
        "deep-extra-field",
        "/api/ingest",
        json_with(nested(MAX_RECORD_DEPTH + 5)),
        "application/json",
        400,
        {"data": {"extra" + "[0]" * MAX_RECORD_DEPTH: [TOO_DEEP]}},
    ),
    (
        "list-instead-of-object",
        "/api/ingest",
        json.dumps([record_with()]),
        "application/json",
        400,
        {"non_field_errors": ["Invalid data. Expected a dictionary, but got list."]},
    ),
    (
        "data-is-a-list",
        "/api/ingest",
        json.dumps({"data": [record_with()["data"]]}),
        "application/json",
        400,
        {"data": {"non_field_errors": ["Invalid data. Expected a dictionary, but got list."]}},
    ),
    (
        "location-is-a-list",
        "/api/ingest",
        json.dumps(record_with(location=["India"])),
        "application/json",
        400,
        {"data": {"location": {"non_field_errors": ["Invalid data. Expected a dictionary, but got list."]}}},
    ),
    (
        "a-number",
        "/api/ingest",
        "42",
        "application/json",
        400,
        {"non_field_errors": ["Invalid data. Expected a dictionary, but got int."]},
    ),
    ("null", "/api/ingest", "null", "application/json", 400, {"non_field_errors": ["No data provided"]}),
    ("empty-body", "/api/ingest", "", "application/json", 400, {"data": ["This field is required."]}),
    (
        "batch-is-a-list",
        "/api/ingest/batch",
        json.dumps([record_with()]),
        "application/json",
        400,
        {"non_field_errors": ["Invalid data. Expected a dictionary, but got list."]},
    ),
    (
        "batch-of-an-object",
        "/api/ingest/batch",
        json.dumps({"batch": record_with()}),
        "application/json",
        400,
        {"batch": ['Expected a list of items but got type "dict".']},
    ),
    (
        "infinite-age",
        "/api/ingest",
        json.dumps(record_with()).replace('"age": 25', '"age": 1e999'),
        "application/json",
        400,
        {"data": {"demographics.age": [NOT_FINITE]}},
    ),
    (
        "null-batch-item",
        "/api/ingest/batch",
        '{"batch": [' + json.dumps(record_with()) + ", null]}",
        "application/json",
        400,
        {"batch": {"1": ["This field may not be null."]}},
    ),
    (
        "5000-digit-number",
        "/api/ingest",
        json_with("9" * 5000),
        "application/json",
        400,
        None,  # Python's own message: "JSON parse error - Exceeds the limit (4300 digits) ..."
    ),
    (
        "not-json",
        "/api/ingest",
        "cookie=a&created_at=today",
        "application/json",
        400,
        {"detail": "JSON parse error - Expecting value: line 1 column 1 (char 0)"},
    ),
    ("binary-junk", "/api/ingest", bytes(range(256)) * 4, "application/json", 400, None),
    (
        "utf-8-bom",
        "/api/ingest",
        b"\xef\xbb\xbf" + json.dumps(record_with()).encode(),
        "application/json",
        400,
        {"detail": "JSON parse error - Unexpected UTF-8 BOM (decode using utf-8-sig): line 1 column 1 (char 0)"},
    ),
    (
        "charset-utf-16-on-utf-8",
        "/api/ingest",
        json.dumps(record_with()),
        "application/json; charset=utf-16",
        400,
        {"detail": "JSON parse error - UTF-16 stream does not start with BOM"},
    ),
    (
        "text-plain",
        "/api/ingest",
        json.dumps(record_with()),
        "text/plain",
        415,
        {"detail": 'Unsupported media type "text/plain" in request.'},
    ),
    (
        "form",
        "/api/ingest",
        "cookie=a&created_at=1%2F1%2F2025+0%3A00",
        "application/x-www-form-urlencoded",
        415,
        {"detail": 'Unsupported media type "application/x-www-form-urlencoded" in request.'},
    ),
    (
        "multipart",
        "/api/ingest/batch",
        '--b\r\nContent-Disposition: form-data; name="batch"\r\n\r\n[]\r\n--b--\r\n',
        "multipart/form-data; boundary=b",
        415,
        {"detail": 'Unsupported media type "multipart/form-data; boundary=b" in request.'},
    ),
    (
        "xml",
        "/api/ingest",
        "<data><cookie>a</cookie></data>",
        "application/xml",
        415,
        {"detail": 'Unsupported media type "application/xml" in request.'},
    ),
    (
        "no-content-type",
        "/api/ingest",
        json.dumps(record_with()),
        "",
        415,
        {"detail": 'Unsupported media type "" in request.'},
    ),
]


@pytest.mark.parametrize(
    ("route", "body", "content_type", "status", "answer"), [case[1:] for case in REFUSED], ids=[c[0] for c in REFUSED]
)
def test_a_refused_request_gets_a_clear_4xx_and_every_table_is_as_it_was(
    ingest_client, seeded, route, body, content_type, status, answer
):
    response = ingest_client.generic("POST", route, body, content_type=content_type)

    assert response.status_code == status, response.content[:500]
    assert response["Content-Type"] == "application/json"
    if answer is None:
        assert response.json()["detail"].startswith("JSON parse error - ")
    else:
        assert response.json() == answer
    assert data_snapshot() == seeded


def test_a_batch_stores_its_good_items_and_rejects_each_bad_one_with_errors_naming_the_field(ingest_client, seeded):
    items = [
        record_with("good-1"),
        record_with("many-interests", interests=[f"i{n}" for n in range(100_000)]),
        record_with("megabyte-interests", interests="x" * MEGABYTE),
        record_with("piped-interests", interests="x|" * (MEGABYTE // 2)),
        record_with("megabyte-note", notes="x" * MEGABYTE),
        record_with("million-zeros", notes=[0] * 1_000_000),
        record_with("long-cookie" + "c" * MEGABYTE),
        "PLACEHOLDER-DEEP",
        "PLACEHOLDER-INFINITE",
        [record_with("in-a-list")],
        42,
        "text",
        record_with("good-2"),
    ]
    body = (
        json.dumps({"batch": items}, separators=(",", ":"))
        .replace('"PLACEHOLDER-DEEP"', json_with(nested(900), "deep"))
        .replace('"PLACEHOLDER-INFINITE"', json_with("-1e999", "infinite"))
    )
    assert len(body) < MAX_BATCH_BYTES

    response = ingest_client.post("/api/ingest/batch", body, content_type="application/json")

    assert response.status_code == 200, response.content[:500]
    results = response.json()
    assert [r["status"] for r in results] == ["created"] + ["rejected"] * 11 + ["created"]
    errors = [r.get("errors") for r in results]
    assert errors[1:5] == [
        {"data": {"interests": ["At most 100 interests."]}},
        {"data": {"interests": ["Each interest has at most 100 characters."]}},
        {"data": {"interests": ["At most 100 interests."]}},
        {"data": {"notes": [TOO_BIG]}},
    ]
    ((zeros_path, zeros_errors),) = errors[5]["data"].items()  # names the element where the record got too big
    assert zeros_path.startswith("notes[") and zeros_errors == [TOO_BIG]
    assert errors[6:12] == [
        {"data": {"cookie": ["At most 255 characters."], "email": ["At most 255 characters."]}},
        {"data": {"extra" + "[0]" * MAX_RECORD_DEPTH: [TOO_DEEP]}},
        {"data": {"extra": [NOT_FINITE]}},
        {"non_field_errors": ["Invalid data. Expected a dictionary, but got list."]},
        {"non_field_errors": ["Invalid data. Expected a dictionary, but got int."]},
        {"non_field_errors": ["Invalid data. Expected a dictionary, but got str."]},
    ]

    new = RawRecord.objects.exclude(pk__in=[row["id"] for row in seeded["users_app.RawRecord"]])
    assert sorted(new.values_list("data__cookie", flat=True)) == ["good-1", "good-2"]


def test_a_record_as_big_as_a_single_request_may_be_is_accepted_by_both_routes(ingest_client):
    """The record size bound is the single route's body limit, never tighter: what /api/ingest takes, a batch takes."""
    filler = MAX_INGEST_BYTES - len(json.dumps(record_with("at-the-limit-1", notes="")))
    single = record_with("at-the-limit-1", notes="x" * filler)
    in_batch = record_with("at-the-limit-2", notes="x" * filler)
    assert len(json.dumps(single)) == MAX_INGEST_BYTES

    assert ingest_client.post("/api/ingest", json.dumps(single), content_type="application/json").status_code == 201
    response = ingest_client.post("/api/ingest/batch", {"batch": [in_batch]}, format="json")
    assert [r["status"] for r in response.json()] == ["created"]
    assert RawRecord.objects.count() == 2
