"""Who may call what: every API route against every kind of caller.

The rules (users_app/access.py, SPECTACULAR_SETTINGS["SERVE_PERMISSIONS"]):

* /api/health answers everyone, with or without credentials.
* Without credentials, or with a wrong or revoked key, every other route answers 401 (never 403):
  ``BearerKeyAuthentication``, the first authentication class, names a ``WWW-Authenticate`` scheme
  (``Bearer``), so DRF turns "not authenticated" into 401 with that header.
* An ingest key may only ingest (2xx there, 403 on every read route); a read key may only read (403 on
  the ingest routes); a staff login may do both. A logged-in user who is not staff may do neither.
* Saved segments are read like the other resources; creating or changing one needs a staff login.
* Erasing a person (DELETE /api/v1/profiles/{id}/) needs an erase key, which can do nothing else, or a
  staff login with the ``delete_profile`` permission (the plain staff login here has none: 403).
* Link decisions (approve or reject a held link, split a profile, reverse a decision) need a govern key or a
  staff login with the ``add_linkdecision`` permission (the plain staff login here has none: 403). The review
  queue and the decisions are read with a read key, a govern key or a staff login; a govern key reads
  nothing else.
* /api/schema/, /api/docs/ and /api/redoc/ need a login of any kind (``IsAuthenticated``): any valid key or
  session gets them, anonymous callers and bad keys get 401.

The last tests walk Django's URL resolver, so a new route under /api/ without a row here (an access rule
nobody wrote down) fails, and so does a route missing from the OpenAPI document.
"""

import copy
import re
from typing import NamedTuple

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from django.utils import timezone
from rest_framework.test import APIClient

from cohorts_app.models import Segment
from tests.api.conftest import SEED_RECORD, client_with
from tests.builders import ingest, record
from users_app.access import api_key_create
from users_app.governance import link_reject, pending_links
from users_app.models import ApiKey, IdentityGuards, ImportRun, LinkDecision, Profile, RawRecord

pytestmark = pytest.mark.django_db

PUBLIC, INGEST, READ, STAFF, DOCS, ERASE = "public", "ingest", "read", "staff", "docs", "erase"
GOVERN = "govern"  # link decisions: a govern key, or staff with add_linkdecision
REVIEW = "review"  # the review queue and the decisions: a read or govern key, or staff


class Route(NamedTuple):
    name: str  # the URL name, as the resolver knows it
    method: str
    # {profile}, {member}, {raw_record}, {import_run}, {segment}, {held_link}, {decision}: ids `world` creates
    path: str
    needs: str  # PUBLIC, INGEST, READ, STAFF, DOCS, ERASE, GOVERN or REVIEW
    payload: dict | None = None

    @property
    def format_suffix(self) -> bool:
        return bool(re.search(r"\.json$", self.path.partition("?")[0]))


SECOND_DEVICE = copy.deepcopy(SEED_RECORD)
SECOND_DEVICE["data"]["cookie"] = "second_device_cookie"
SPLIT = {"kind": "cookie", "value": "second_device_cookie"}

ROUTES = [
    Route("health", "get", "/api/health", PUBLIC),
    Route("ingest", "post", "/api/ingest", INGEST, SEED_RECORD),
    Route("ingest-batch", "post", "/api/ingest/batch", INGEST, {"batch": [SEED_RECORD, SECOND_DEVICE]}),
    Route("user", "get", "/api/user?cookie=user_cookie_id", READ),
    Route("cohort-user", "get", "/api/cohort/user", READ),
    Route("api-root", "get", "/api/v1/", READ),
    Route("api-root", "get", "/api/v1/.json", READ),
    Route("profile-list", "get", "/api/v1/profiles/", READ),
    Route("profile-list", "get", "/api/v1/profiles.json", READ),
    Route("profile-detail", "get", "/api/v1/profiles/{profile}/", READ),
    Route("profile-detail", "get", "/api/v1/profiles/{profile}.json", READ),
    Route("profile-detail", "delete", "/api/v1/profiles/{profile}/", ERASE),
    Route("rawrecord-list", "get", "/api/v1/raw-records/", READ),
    Route("rawrecord-list", "get", "/api/v1/raw-records.json", READ),
    Route("rawrecord-detail", "get", "/api/v1/raw-records/{raw_record}/", READ),
    Route("rawrecord-detail", "get", "/api/v1/raw-records/{raw_record}.json", READ),
    Route("importrun-list", "get", "/api/v1/import-runs/", READ),
    Route("importrun-list", "get", "/api/v1/import-runs.json", READ),
    Route("importrun-detail", "get", "/api/v1/import-runs/{import_run}/", READ),
    Route("importrun-detail", "get", "/api/v1/import-runs/{import_run}.json", READ),
    Route("cohort-member-list", "get", "/api/v1/cohort-members/", READ),
    Route("cohort-member-list", "get", "/api/v1/cohort-members.json", READ),
    Route("cohort-member-detail", "get", "/api/v1/cohort-members/{member}/", READ),
    Route("cohort-member-detail", "get", "/api/v1/cohort-members/{member}.json", READ),
    Route("segment-list", "get", "/api/v1/segments/", READ),
    Route("segment-list", "get", "/api/v1/segments.json", READ),
    Route("segment-list", "post", "/api/v1/segments/", STAFF, {"name": "new", "filters": {"country": "USA"}}),
    Route("segment-detail", "get", "/api/v1/segments/{segment}/", READ),
    Route("segment-detail", "get", "/api/v1/segments/{segment}.json", READ),
    Route("segment-members", "get", "/api/v1/segments/{segment}/members/", READ),
    Route("segment-members", "get", "/api/v1/segments/{segment}/members.json", READ),
    Route("profile-explain", "get", "/api/v1/profiles/{profile}/explain/", READ),
    Route("profile-explain", "get", "/api/v1/profiles/{profile}/explain.json", READ),
    Route("profile-split", "post", "/api/v1/profiles/{profile}/split/", GOVERN, SPLIT),
    Route("profile-split", "post", "/api/v1/profiles/{profile}/split.json", GOVERN, SPLIT),
    Route("pending-link-list", "get", "/api/v1/links/pending/", REVIEW),
    Route("pending-link-list", "get", "/api/v1/links/pending.json", REVIEW),
    Route("pending-link-detail", "get", "/api/v1/links/pending/{held_link}/", REVIEW),
    Route("pending-link-detail", "get", "/api/v1/links/pending/{held_link}.json", REVIEW),
    Route("pending-link-approve", "post", "/api/v1/links/pending/{held_link}/approve/", GOVERN),
    Route("pending-link-approve", "post", "/api/v1/links/pending/{held_link}/approve.json", GOVERN),
    Route("pending-link-reject", "post", "/api/v1/links/pending/{held_link}/reject/", GOVERN),
    Route("pending-link-reject", "post", "/api/v1/links/pending/{held_link}/reject.json", GOVERN),
    Route("link-decision-list", "get", "/api/v1/link-decisions/", REVIEW),
    Route("link-decision-list", "get", "/api/v1/link-decisions.json", REVIEW),
    Route("link-decision-detail", "get", "/api/v1/link-decisions/{decision}/", REVIEW),
    Route("link-decision-detail", "get", "/api/v1/link-decisions/{decision}.json", REVIEW),
    Route("link-decision-reverse", "post", "/api/v1/link-decisions/{decision}/reverse/", GOVERN),
    Route("link-decision-reverse", "post", "/api/v1/link-decisions/{decision}/reverse.json", GOVERN),
    Route("stats", "get", "/api/v1/stats/?segment={segment}", READ),
    Route("retention", "get", "/api/v1/retention/?segment={segment}", READ),
    Route("schema", "get", "/api/schema/", DOCS),
    Route("swagger-ui", "get", "/api/docs/", DOCS),
    Route("redoc", "get", "/api/redoc/", DOCS),
]

UNAUTHENTICATED = {
    PUBLIC: {200}, INGEST: {401}, READ: {401}, STAFF: {401}, DOCS: {401}, ERASE: {401}, GOVERN: {401}, REVIEW: {401}
}  # fmt: skip
EXPECTED = {
    "anonymous": UNAUTHENTICATED,
    "unknown key": UNAUTHENTICATED,
    "malformed key": UNAUTHENTICATED,
    "revoked key": UNAUTHENTICATED,
    "ingest key": {
        PUBLIC: {200}, INGEST: {200, 201}, READ: {403}, STAFF: {403}, DOCS: {200}, ERASE: {403}, GOVERN: {403},
        REVIEW: {403},
    },
    "read key": {
        PUBLIC: {200}, INGEST: {403}, READ: {200}, STAFF: {403}, DOCS: {200}, ERASE: {403}, GOVERN: {403},
        REVIEW: {200},
    },
    "erase key": {
        PUBLIC: {200}, INGEST: {403}, READ: {403}, STAFF: {403}, DOCS: {200}, ERASE: {200}, GOVERN: {403},
        REVIEW: {403},
    },
    "govern key": {
        PUBLIC: {200}, INGEST: {403}, READ: {403}, STAFF: {403}, DOCS: {200}, ERASE: {403}, GOVERN: {200},
        REVIEW: {200},
    },
    "staff login": {
        PUBLIC: {200}, INGEST: {200, 201}, READ: {200}, STAFF: {201}, DOCS: {200}, ERASE: {403}, GOVERN: {403},
        REVIEW: {200},
    },
    "non-staff login": {
        PUBLIC: {200}, INGEST: {403}, READ: {403}, STAFF: {403}, DOCS: {200}, ERASE: {403}, GOVERN: {403},
        REVIEW: {403},
    },
}  # fmt: skip
# Not in the OpenAPI document, on purpose: the document itself, the two pages that render it, and the
# router's index of /api/v1/ (DRF's APIRootView sets ``schema = None``).
NOT_IN_OPENAPI = {"schema", "swagger-ui", "redoc", "api-root"}


@pytest.fixture
def world(ingest_key) -> dict[str, int]:
    """One person seen on two devices (so a cohort member), their raw records and an import run; and a family
    whose shared address went past the cookie cap twice: one of those links rejected (a decision), one held."""
    client = client_with(ingest_key)
    for payload in (SEED_RECORD, SECOND_DEVICE):
        assert client.post("/api/ingest", payload, format="json").status_code in (200, 201)
    profile = Profile.objects.get()
    IdentityGuards.objects.create(max_cookies_per_email=2)
    ingest(*(record(cookie=f"family-{n}", email="family@example.org") for n in range(4)))
    link_reject(held=pending_links().first(), actor="user:setup")
    return {
        "profile": profile.pk,
        "member": profile.pk,
        "raw_record": RawRecord.objects.filter(profile=profile).first().pk,
        "import_run": ImportRun.objects.create(file_name="f.csv", sha256="0" * 64).pk,
        "segment": Segment.objects.create(name="Americans", filters={"country": "USA"}).pk,
        "held_link": pending_links().get().pk,
        "decision": LinkDecision.objects.get().pk,
    }


def caller(identity: str, request, django_user_model) -> APIClient:
    if identity == "anonymous":
        return APIClient()
    if identity == "unknown key":
        return client_with("ak_0123456789_not-a-key-anyone-was-given")
    if identity == "malformed key":
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION="Bearer")  # keyword without a key
        return client
    if identity == "revoked key":
        key, plaintext = api_key_create(name="revoked", scope="read")
        ApiKey.objects.filter(pk=key.pk).update(revoked_at=timezone.now())
        return client_with(plaintext)
    if identity == "ingest key":
        return request.getfixturevalue("ingest_client")
    if identity == "read key":
        return request.getfixturevalue("read_client")
    if identity == "erase key":
        return client_with(request.getfixturevalue("erase_key"))
    if identity == "govern key":
        return request.getfixturevalue("govern_client")
    if identity == "staff login":
        return request.getfixturevalue("staff_client")
    if identity == "non-staff login":
        client = APIClient()
        client.force_login(django_user_model.objects.create_user("analyst", password="pw", is_staff=False))
        return client
    raise AssertionError(identity)


@pytest.mark.parametrize("identity", list(EXPECTED))
@pytest.mark.parametrize("route", ROUTES, ids=[f"{r.method.upper()} {r.path}" for r in ROUTES])
def test_each_route_answers_each_caller_as_its_access_rule_says(route, identity, world, request, django_user_model):
    client = caller(identity, request, django_user_model)
    raw_records_before, segments_before = RawRecord.objects.count(), Segment.objects.count()
    decisions_before = list(LinkDecision.objects.values_list("pk", "reversed_at"))

    path = route.path.format(**world)
    if route.method == "post":
        response = client.post(path, route.payload, format="json")
    else:
        response = getattr(client, route.method)(path)

    expected = EXPECTED[identity][route.needs]
    assert response.status_code in expected, (identity, route.path, response.status_code, response.content[:300])
    if response.status_code == 401:
        assert response["WWW-Authenticate"] == "Bearer"
    if response.status_code in (401, 403):
        assert SEED_RECORD["data"]["email"].encode() not in response.content  # no personal data on refusal
        assert RawRecord.objects.count() == raw_records_before  # a refused ingest stores (or erases) nothing
        assert Segment.objects.count() == segments_before
        assert list(LinkDecision.objects.values_list("pk", "reversed_at")) == decisions_before  # nor decides


@pytest.mark.parametrize(
    ("path", "method"),
    [
        (r.path, method)
        for r in ROUTES
        if r.name.endswith(("-list", "-detail")) and r.method == "get" and not r.name.startswith("segment-")
        for method in ("post", "put", "patch", "delete")
        # Deleting a profile is erasing the person: ERASE in the matrix above.
        if not (r.name == "profile-detail" and method == "delete")
    ],
)
def test_the_v1_resources_are_read_only_even_for_staff(path, method, staff_client, world):
    profiles_before = Profile.objects.count()

    response = getattr(staff_client, method)(path.format(**world), {}, format="json")

    assert response.status_code == 405
    assert Profile.objects.count() == profiles_before and ImportRun.objects.count() == 1


def test_a_key_sent_with_another_auth_keyword_is_not_a_login(read_key):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {read_key}")

    assert client.get("/api/v1/profiles/").status_code == 401


def api_routes() -> list[tuple[str, str, bool]]:
    """(route as written, URL name, has a format suffix) for every URL pattern under /api/."""

    def walk(patterns, prefix=""):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                yield from walk(pattern.url_patterns, prefix + str(pattern.pattern))
            elif isinstance(pattern, URLPattern):
                yield prefix + str(pattern.pattern), pattern.name, "format" in pattern.pattern.regex.groupindex

    return [route for route in walk(get_resolver().url_patterns) if route[0].startswith("api/")]


def test_every_api_route_has_a_row_in_the_authorization_matrix():
    in_matrix = {(route.name, route.format_suffix) for route in ROUTES}
    routes = api_routes()

    missing = [pattern for pattern, name, suffix in routes if (name, suffix) not in in_matrix]
    assert not missing, f"routes under /api/ with no access rule in ROUTES: {missing}"
    assert len(routes) >= 20  # the walk found the router's routes too


def test_every_row_of_the_matrix_is_a_route_of_that_name():
    ids = {"profile": 1, "member": 1, "raw_record": 1, "import_run": 1, "segment": 1, "held_link": 1, "decision": 1}
    for route in ROUTES:
        path = route.path.format(**ids).partition("?")[0]
        assert resolve(path).url_name == route.name, path


def template_regex(template: str) -> re.Pattern:
    """/api/v1/profiles/{id}/ as a regex matching /api/v1/profiles/1/."""
    return re.compile("^" + "[^/]+".join(re.escape(part) for part in re.split(r"\{[^}]+\}", template)) + "$")


def sample_path(route: str) -> str:
    """A URL the route matches, ids set to 1: 'api/v1/^profiles/(?P<pk>[^/.]+)/$' -> '/api/v1/profiles/1/'."""
    path = re.sub(r"\(\?P<\w+>[^)]*\)|<(\w+:)?\w+>", "1", route)
    return "/" + path.replace("^", "").replace("$", "").replace("\\.", ".")


def test_every_api_route_but_the_docs_is_in_the_openapi_document(read_client):
    document = read_client.get("/api/schema/?format=json").json()
    templates = {template_regex(path): path for path in document["paths"]}

    def documented(path: str) -> list[str]:
        return [template for regex, template in templates.items() if regex.match(path)]

    undocumented = [
        route
        for route, name, suffix in api_routes()  # /api-auth/ (DRF's login pages) is not under /api/
        if name not in NOT_IN_OPENAPI and not suffix and not documented(sample_path(route))
    ]
    assert not undocumented, f"routes under /api/ missing from the OpenAPI document: {undocumented}"
    ids = {"profile": 1, "member": 1, "raw_record": 1, "import_run": 1, "segment": 1, "held_link": 1, "decision": 1}
    for route in ROUTES:  # and with the method the matrix calls them with
        if route.name not in NOT_IN_OPENAPI and not route.format_suffix:
            path = route.path.format(**ids).partition("?")[0]
            assert any(route.method in document["paths"][t] for t in documented(path)), f"{route.method} {path}"
    assert {"/api/ingest", "/api/user", "/api/cohort/user"} <= set(document["paths"])


def test_every_path_in_the_openapi_document_is_routed_and_has_a_row_in_the_matrix(read_client):
    document = read_client.get("/api/schema/?format=json").json()
    names_in_matrix = {route.name for route in ROUTES}

    for path in document["paths"]:
        match = resolve(re.sub(r"\{[^}]+\}", "1", path))
        assert match.url_name in names_in_matrix, path
