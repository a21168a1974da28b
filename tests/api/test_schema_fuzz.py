"""Schemathesis over the OpenAPI document: every operation, called in-process through Django's WSGI app.

Every operation gets schema-valid (positive) and schema-violating (negative) requests, sent with a key of
the scope it needs (ingest key for POST /api/ingest*, erase key for DELETE, govern key for the link
decisions, read key for the rest). Four
properties, one test each, so a failure of one does not hide the others:

* no request gets a 5xx;
* answers match the document: documented status codes, content types, headers and bodies;
* schema-violating requests are refused with a 4xx;
* operations that declare auth refuse the same request without a key and with a wrong one.

Loading: ``schemathesis.pytest.from_fixture`` does not work with pytest 9.2 (it sets ``Item._nodeid``, which
pytest 9.2 removed), and /api/schema/ needs a login, which does not exist at import time. So the document
comes from drf-spectacular's generator (the one the view serves; the first test checks they are equal) and
``schema.app`` points schemathesis at the WSGI app.

Database: ``transaction=True``. The calls go through Django's real ``WSGIHandler``, which sends
``request_finished`` and so runs ``close_old_connections`` after each call; inside the rollback-only
transaction of a plain ``django_db`` test that closes the connection mid-test (the autocommit state differs
from the settings). With committed data the app also runs as in production: ``run_with_retries`` can
retry, and each ingest is committed before the next request reads it.

Random data almost never makes a record the ingest routes accept, or an id that exists, so a hook steers
part of the positive cases to seeded ids and cookies, to records with a usable cookie and a readable
``created_at``, and to splits of an identifier the profile holds; without it, the storage path, the
decisions and the 200 bodies of the detail routes would go unchecked.
Generation is derandomized, so a run is reproducible and a CI failure replays locally.
"""

import copy
import datetime as dt
import json
from urllib.parse import parse_qs, urlsplit

import hypothesis
import jsonschema
import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer
from hypothesis import strategies as st
from schemathesis.core.parameters import ParameterLocation
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi import checks as openapi_checks

from tests.api.conftest import SEED_RECORD, client_with
from tests.builders import ingest, record
from users_app.governance import link_reject, pending_links
from users_app.models import Identifier, IdentityGuards, ImportRun, LinkDecision, Profile, RawRecord

pytestmark = pytest.mark.django_db(transaction=True)

MAX_EXAMPLES = 50
INGEST_PATHS = {"/api/ingest", "/api/ingest/batch"}
SPLIT_PATH = "/api/v1/profiles/{id}/split/"
GOVERN_PATHS = {
    "/api/v1/links/pending/{id}/approve/",
    "/api/v1/links/pending/{id}/reject/",
    "/api/v1/link-decisions/{id}/reverse/",
    SPLIT_PATH,
}
FUZZ_SETTINGS = hypothesis.settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[
        hypothesis.HealthCheck.function_scoped_fixture,
        hypothesis.HealthCheck.too_slow,
    ],
)


def openapi_document() -> dict:
    """What GET /api/schema/?format=json serves, built without a request (the view needs a login)."""
    return json.loads(OpenApiJsonRenderer().render(SchemaGenerator().get_schema(request=None, public=True)))


DOCUMENT = openapi_document()
schema = schemathesis.openapi.from_dict(DOCUMENT)
schema.app = get_wsgi_application()
schema.config.generation.update(
    modes=list(GenerationMode), max_examples=MAX_EXAMPLES, with_security_parameters=False, deterministic=True
)

# What the seeding fixture stored, for the hook below and `call`: {"/api/v1/profiles/{id}/": [ids], "cookie": [...],
# ..., "erase key": key}
SEEDED: dict[str, list | str] = {}


@pytest.fixture(autouse=True)
def seeded(ingest_key, erase_key, govern_key):
    """A multi-device person (two cookies, one email), their raw records and an import run; a family whose
    address went past the cookie cap twice, one of those links rejected (a decision) and one held; and the
    keys DELETE and the decisions need (here, not parameters of the tests: hypothesis derives their
    examples from their source, so changing it would change every operation's examples)."""
    client = client_with(ingest_key)
    second_device = copy.deepcopy(SEED_RECORD)
    second_device["data"]["cookie"] = "second_device"
    for payload in (SEED_RECORD, second_device):
        assert client.post("/api/ingest", payload, format="json").status_code in (200, 201)
    ImportRun.objects.create(file_name="f.csv", sha256="0" * 64)
    IdentityGuards.objects.create(max_cookies_per_email=2)
    ingest(*(record(cookie=f"family-{n}", email="family@example.org") for n in range(4)))
    link_reject(held=pending_links().first(), actor="user:setup")
    profile_ids = list(Profile.objects.values_list("pk", flat=True))
    held_ids = list(pending_links().values_list("pk", flat=True))
    decision_ids = list(LinkDecision.objects.values_list("pk", flat=True))
    SEEDED.clear()
    SEEDED.update(
        {
            "/api/v1/profiles/{id}/": profile_ids,
            "/api/v1/profiles/{id}/explain/": profile_ids,
            "/api/v1/cohort-members/{id}/": profile_ids,
            "/api/v1/links/pending/{id}/": held_ids,
            "/api/v1/links/pending/{id}/approve/": held_ids,
            "/api/v1/links/pending/{id}/reject/": held_ids,
            "/api/v1/link-decisions/{id}/": decision_ids,
            "/api/v1/link-decisions/{id}/reverse/": decision_ids,
            # What a split names: a profile and one of its identifiers, as stored.
            "split": list(Identifier.objects.values_list("profile_id", "kind", "value")),
            "/api/v1/raw-records/{id}/": list(RawRecord.objects.values_list("pk", flat=True)),
            "/api/v1/import-runs/{id}/": list(ImportRun.objects.values_list("pk", flat=True)),
            "cookie": [SEED_RECORD["data"]["cookie"], "second_device"],
            "email": [SEED_RECORD["data"]["email"]],
            "erase key": erase_key,
            "govern key": govern_key,
        }
    )
    yield
    SEEDED.clear()


def created_at_values():
    """Dates ``created_at`` accepts: the CSV formats and ISO 8601, naive or with any UTC offset."""
    offsets = st.timedeltas(
        min_value=dt.timedelta(hours=-23, minutes=-59), max_value=dt.timedelta(hours=23, minutes=59)
    )
    aware = st.datetimes(timezones=st.builds(dt.timezone, offsets.map(lambda d: d - d % dt.timedelta(minutes=1))))
    return st.one_of(
        st.datetimes().map(lambda d: d.strftime("%m/%d/%Y %H:%M")),
        st.datetimes().map(lambda d: d.isoformat()),
        aware.map(lambda d: d.isoformat()),
    )


def ingestible(data):
    """A generated record made ingestible: a usable cookie and a readable ``created_at``, the rest as generated."""
    data = copy.deepcopy(data) if isinstance(data, dict) else {}
    return st.fixed_dictionaries(
        {"cookie": st.one_of(st.sampled_from(SEEDED["cookie"]), st.text(min_size=1)), "created_at": created_at_values()}
    ).map(lambda usable: {**data, **usable})


@schema.hook
def flatmap_case(context, case):
    """Steer positive cases towards what exists and what the ingest routes accept (negative ones stay as they are)."""
    if case.meta is None or case.meta.generation.mode is not GenerationMode.POSITIVE or not SEEDED:
        return st.just(case)
    path, body = case.operation.path, case.body

    if path == SPLIT_PATH and isinstance(body, dict):
        splits = st.sampled_from(SEEDED["split"]).map(
            lambda split: _replaced(
                case, path_parameters={"id": split[0]}, body={**body, "kind": split[1], "value": split[2]}
            )
        )
        return st.one_of(st.just(case), splits)
    if path in SEEDED:
        ids = st.sampled_from(SEEDED[path])
        return st.one_of(st.just(case), ids.map(lambda pk: _replaced(case, path_parameters={"id": pk})))
    if path == "/api/user":
        lookups = st.one_of(
            st.sampled_from(SEEDED["cookie"]).map(lambda cookie: {"cookie": cookie}),
            st.sampled_from(SEEDED["email"]).map(lambda email: {"email": email}),
        )
        return st.one_of(st.just(case), lookups.map(lambda query: _replaced(case, query=query)))
    if path == "/api/ingest" and isinstance(body, dict):
        return ingestible(body.get("data")).map(lambda data: _replaced(case, body={**body, "data": data}))
    if path == "/api/ingest/batch" and isinstance(body, dict) and isinstance(body.get("batch"), list):
        items = st.lists(ingestible({}).map(lambda data: {"data": data}), min_size=1, max_size=5)
        return items.map(lambda batch: _replaced(case, body={"batch": [*body["batch"][:3], *batch]}))
    return st.just(case)


def _replaced(case, **parts):
    """The case with some parts replaced (each draw gets a freshly generated case, so in place is safe)."""
    for name, value in parts.items():
        setattr(case, name, copy.deepcopy(value))
    return case


def call(case, ingest_key, read_key, checks):
    # DELETE erases the seeded person: the first positive case answers 200, later ones 404. A decision
    # answers 200 once; deciding again is a 400 (or a 404: a decision's replay gives held links new ids).
    if case.path in INGEST_PATHS:
        key = ingest_key
    elif case.method == "DELETE":
        key = SEEDED["erase key"]
    elif case.path in GOVERN_PATHS:
        key = SEEDED["govern key"]
    else:
        key = read_key
    case.call_and_validate(headers={"Authorization": f"Bearer {key}"}, checks=checks)


def test_the_fuzzed_document_is_the_one_the_app_serves(read_client):
    response = read_client.get("/api/schema/?format=json")

    assert response.status_code == 200
    assert json.loads(response.content) == openapi_document()


def test_every_operation_is_fuzzed():
    operations = {(op.ok().method.upper(), op.ok().path) for op in schema.get_all_operations()}
    document = openapi_document()
    assert operations == {(method.upper(), path) for path, item in document["paths"].items() for method in item}
    assert len(operations) >= 13


@schema.parametrize()
@FUZZ_SETTINGS
def test_no_request_gets_a_server_error(case, ingest_key, read_key):
    call(case, ingest_key, read_key, [schemathesis.checks.not_a_server_error])


@schema.parametrize()
@FUZZ_SETTINGS
def test_answers_match_the_documented_status_codes_content_types_headers_and_bodies(case, ingest_key, read_key):
    checks = [
        openapi_checks.status_code_conformance,
        openapi_checks.content_type_conformance,
        openapi_checks.response_headers_conformance,
        openapi_checks.response_schema_conformance,
    ]
    call(case, ingest_key, read_key, checks)


def readings(text):
    """What a server may read a query text as: the text, or the JSON number or boolean it spells."""
    try:
        return [text, json.loads(text)]
    except ValueError:
        return [text]


def query_as_sent_is_valid(response, case):
    """Whether the query, read back from the URL as sent, satisfies the document.

    A query carries text, so some negative values reach the server as valid ones (schemathesis 4.32.5
    misses e.g. ``False`` in an array of strings, sent as ``false``, next to ``{}``, sent as an empty value).
    """
    sent = parse_qs(urlsplit(response.request.url).query, keep_blank_values=True)
    declared = DOCUMENT["paths"][case.path][case.method.lower()].get("parameters", [])
    declared = {p["name"]: p for p in declared if p["in"] == "query"}
    if any(p.get("required") and name not in sent for name, p in declared.items()) or set(sent) - set(declared):
        return False
    for name, texts in sent.items():
        validator = jsonschema.Draft202012Validator(declared[name]["schema"])
        if declared[name]["schema"].get("type") == "array":
            candidates = [texts, [readings(text)[-1] for text in texts]]
        else:
            candidates = readings(texts[0]) if len(texts) == 1 else [texts]
        if not any(validator.is_valid(candidate) for candidate in candidates):
            return False
    return True


def negative_query_data_rejection(ctx, response, case):
    """schemathesis' check, except for negative queries that are valid as sent and the only negative part."""
    meta = case.meta
    query = ParameterLocation.QUERY
    negative_elsewhere = any(meta.is_negative_at(location) for location in meta.components if location != query)
    if meta.is_negative_at(query) and not negative_elsewhere and query_as_sent_is_valid(response, case):
        return None
    return openapi_checks.negative_data_rejection(ctx, response, case)


@schema.parametrize()
@FUZZ_SETTINGS
def test_schema_violating_requests_are_refused_with_a_4xx(case, ingest_key, read_key):
    call(case, ingest_key, read_key, [negative_query_data_rejection])


def test_a_negative_query_that_is_valid_as_sent_is_told_apart_from_an_invalid_one():
    class Sent:
        def __init__(self, query):
            self.request = type("Request", (), {"url": f"http://localhost/api/cohort/user?{query}"})

    cohort = schema["/api/cohort/user"]["GET"].Case(query={})
    assert query_as_sent_is_valid(Sent("age_min=&interests_all=false"), cohort)
    assert query_as_sent_is_valid(Sent("age_min=25&interests_all=art&interests_all=tech"), cohort)
    assert not query_as_sent_is_valid(Sent("age_min=old"), cohort)
    assert not query_as_sent_is_valid(Sent("undeclared=1"), cohort)


@schema.parametrize()
@FUZZ_SETTINGS
def test_operations_that_declare_auth_refuse_requests_without_a_key_or_with_a_wrong_one(case, ingest_key, read_key):
    call(case, ingest_key, read_key, [openapi_checks.ignored_auth])


RECORD = {"cookie": "c1", "created_at": "03/10/2025 15:30"}
YEAR_0 = "0001-01-01T00:00:00+05:00"  # 31 December of year 0 in UTC, which Python's datetime cannot hold


def regression(name, method, path, data):
    """One input the fuzzer found that once gave a 500."""
    return pytest.param(method, path, data, id=name)


@pytest.mark.parametrize(
    ("method", "path", "data"),
    [
        # PostgreSQL refuses NUL characters in text and jsonb, and UTC offsets beyond +-15:59 (fixed).
        regression("user-cookie-nul", "get", "/api/user", {"cookie": "a\x00b"}),
        regression("user-email-nul", "get", "/api/user", {"email": "a\x00b"}),
        regression("profiles-interests-nul", "get", "/api/v1/profiles/", {"interests": "a\x00b"}),
        regression("profiles-interests_all-nul", "get", "/api/v1/profiles/", {"interests_all": "a\x00b"}),
        regression("members-interests-nul", "get", "/api/v1/cohort-members/", {"interests": "a\x00b"}),
        regression("cohort-interests-nul", "get", "/api/cohort/user", {"interests": "a\x00b"}),
        regression(
            "profiles-offset-16h", "get", "/api/v1/profiles/", {"first_seen_after": "2025-03-10T02:20:55-16:00"}
        ),
        regression("cohort-offset-16h", "get", "/api/cohort/user", {"first_seen_after": "0254-07-13T23:43:30.0-16:48"}),
        regression("ingest-cookie-nul", "post", "/api/ingest", {"data": {**RECORD, "cookie": "a\x00b"}}),
        regression("ingest-extra-field-nul", "post", "/api/ingest", {"data": {**RECORD, "note": "a\x00"}}),
        regression(
            "batch-one-item-with-nul",
            "post",
            "/api/ingest/batch",
            {"batch": [{"data": {**RECORD, "cookie": "a\x00b"}}, {"data": RECORD}]},
        ),
        # Dates whose UTC value Python's datetime cannot hold (refused with a 400, fixed).
        regression(
            "profiles-first_seen_before-year-0-in-utc",
            "get",
            "/api/v1/profiles/",
            {"first_seen_before": YEAR_0},
        ),
        regression(
            "ingest-created_at-before-year-1-in-utc",
            "post",
            "/api/ingest",
            {"data": {**RECORD, "created_at": YEAR_0}},
        ),
        regression(
            "ingest-created_at-after-year-9999-in-utc",
            "post",
            "/api/ingest",
            {"data": {**RECORD, "created_at": "9999-12-31T23:59:59-05:00"}},
        ),
        regression(
            "batch-one-item-before-year-1-in-utc",
            "post",
            "/api/ingest/batch",
            {"batch": [{"data": {**RECORD, "created_at": YEAR_0}}, {"data": RECORD}]},
        ),
    ],
)
def test_inputs_the_fuzzer_found_are_refused_or_accepted_without_a_server_error(
    method, path, data, ingest_key, read_key
):
    client = client_with(ingest_key if path in INGEST_PATHS else read_key)
    client.raise_request_exception = False
    response = client.get(path, data) if method == "get" else client.post(path, data, format="json")

    assert response.status_code < 500, response.content[:300]
    if path == "/api/ingest/batch":  # a bad item does not sink the good one next to it
        assert response.status_code == 200, response.content[:300]
        assert response.json()[-1]["status"] in ("created", "updated"), response.json()
