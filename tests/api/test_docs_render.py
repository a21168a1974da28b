"""The human-facing API pages render: DRF's browsable API, Swagger UI, Redoc, and the OpenAPI document.

Swagger UI and Redoc come from drf-spectacular-sidecar (``SWAGGER_UI_DIST``/``REDOC_DIST = "SIDECAR"``), so
their JavaScript must be a static file of this site, found by the staticfiles finders and served, not a CDN.
"""

import json
import re
from html.parser import HTMLParser

import pytest
import yaml
from django.conf import settings
from django.contrib.staticfiles import finders
from django.urls import reverse
from rest_framework.test import APIClient

from tests.api.conftest import SEED_RECORD

pytestmark = pytest.mark.django_db

EMAIL = SEED_RECORD["data"]["email"]


class Assets(HTMLParser):
    """The URLs a page loads: ``<script src>`` and ``<link rel=stylesheet href>``."""

    def __init__(self, html: str):
        super().__init__()
        self.scripts: list[str] = []
        self.stylesheets: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "script" and attributes.get("src"):
            self.scripts.append(attributes["src"])
        if tag == "link" and attributes.get("rel") == "stylesheet":
            self.stylesheets.append(attributes["href"])


def static_path(url: str) -> str:
    static_url = "/" + settings.STATIC_URL.lstrip("/")
    assert url.startswith(static_url), f"{url} is not one of this site's static files"
    return url.removeprefix(static_url)


def assert_found_and_served(client, url: str) -> None:
    assert finders.find(static_path(url)), f"no staticfiles finder finds {url}"
    response = client.get(url)
    try:
        assert response.status_code == 200, url
        assert response["Content-Type"].startswith(("text/javascript", "application/javascript", "text/css")), url
    finally:
        response.close()


@pytest.fixture
def profile_id(ingest_client) -> int:
    response = ingest_client.post("/api/ingest", SEED_RECORD, format="json")
    assert response.status_code == 201, response.content
    return response.json()["profile_id"]


def html_of(response) -> str:
    assert response.status_code == 200, response.content[:300]
    assert response["Content-Type"].startswith("text/html")
    return response.content.decode()


def test_the_browsable_api_renders_the_profile_list_with_its_filters_for_a_staff_login(staff_client, profile_id):
    html = html_of(staff_client.get("/api/v1/profiles/", HTTP_ACCEPT="text/html"))

    assert "<title>Profile List \N{EN DASH} Django REST framework</title>" in html
    assert "<h1>Profile List</h1>" in html
    assert 'data-target="#filtersModal"' in html  # the "Filters" button
    assert 'id="filtersModal"' in html and "Filters" in html
    for field in ("country", "age_min", "interests", "multi_device", "first_seen_after"):
        assert f'name="{field}"' in html, f"the filter form has no {field} field"
    assert f'<a href="mailto:{EMAIL}">{EMAIL}</a>' in html  # the profile itself, in the rendered JSON


def test_the_browsable_api_renders_a_profile_with_its_identifiers(staff_client, profile_id):
    html = html_of(staff_client.get(f"/api/v1/profiles/{profile_id}/", HTTP_ACCEPT="text/html"))

    assert "<h1>Profile Instance</h1>" in html
    assert "user_cookie_id" in html and EMAIL in html


def test_the_browsable_api_filter_form_filters(staff_client, profile_id):
    matching = html_of(staff_client.get("/api/v1/profiles/?country=USA", HTTP_ACCEPT="text/html"))
    other = html_of(staff_client.get("/api/v1/profiles/?country=India", HTTP_ACCEPT="text/html"))

    assert EMAIL in matching
    assert EMAIL not in other


def filter_form_fields(html: str) -> list[str]:
    """The names of the fields in the browsable API's "Filters" form."""
    form = html[html.index('id="filtersModal"') :]
    form = form[: form.index("</form>")]
    return re.findall(r'<(?:input|select|textarea)[^>]*\bname="([^"]+)"', form)


@pytest.mark.parametrize("resource", ["profiles", "cohort-members", "raw-records", "import-runs"])
def test_submitting_the_filter_form_with_every_field_left_empty_lists_everything(staff_client, resource, profile_id):
    """A browser submits every field of the form, the empty ones as ``name=``: that must mean "no filter"."""
    url = f"/api/v1/{resource}/"
    fields = filter_form_fields(html_of(staff_client.get(url, HTTP_ACCEPT="text/html")))
    assert fields, f"{url} has no filter form"

    response = staff_client.get(url, dict.fromkeys(fields, ""), HTTP_ACCEPT="text/html")

    assert response.status_code == 200, response.content[:500]
    if resource in ("profiles", "raw-records"):
        assert EMAIL in response.content.decode()


def test_submitting_the_profile_filter_form_filters_by_the_filled_field(staff_client, profile_id):
    fields = filter_form_fields(html_of(staff_client.get("/api/v1/profiles/", HTTP_ACCEPT="text/html")))

    usa = staff_client.get(
        "/api/v1/profiles/", {**dict.fromkeys(fields, ""), "country": "USA"}, HTTP_ACCEPT="text/html"
    )
    india = staff_client.get("/api/v1/profiles/", {**dict.fromkeys(fields, ""), "country": "India"})

    assert EMAIL in html_of(usa)
    assert india.status_code == 200 and india.json()["results"] == []


def test_the_browsable_api_loads_only_static_files_that_are_found_and_served(staff_client, profile_id):
    assets = Assets(html_of(staff_client.get("/api/v1/profiles/", HTTP_ACCEPT="text/html")))

    assert any(url.endswith("/rest_framework/js/jquery-3.7.1.min.js") for url in assets.scripts)
    for url in assets.scripts + assets.stylesheets:
        assert_found_and_served(staff_client, url)


def test_the_browsable_api_shows_no_personal_data_to_an_anonymous_browser(profile_id):
    response = APIClient().get("/api/v1/profiles/", HTTP_ACCEPT="text/html")

    assert response.status_code == 401
    assert EMAIL.encode() not in response.content


def test_swagger_ui_loads_its_javascript_from_the_sidecar_static_files(staff_client):
    html = html_of(staff_client.get("/api/docs/"))
    assets = Assets(html)

    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in assets.scripts
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-standalone-preset.js" in assets.scripts
    assert f'url: "{reverse("schema")}"' in html  # Swagger UI reads the document this site serves
    assert "cdn.jsdelivr.net" not in html and "unpkg.com" not in html
    for url in assets.scripts + assets.stylesheets:
        assert "swagger-ui-dist" in url
        assert_found_and_served(staff_client, url)


def test_redoc_loads_its_javascript_from_the_sidecar_static_files(staff_client):
    html = html_of(staff_client.get("/api/redoc/"))
    assets = Assets(html)

    assert assets.scripts == ["/static/drf_spectacular_sidecar/redoc/bundles/redoc.standalone.js"]
    assert f'<redoc spec-url="{reverse("schema")}"></redoc>' in html
    assert_found_and_served(staff_client, assets.scripts[0])


@pytest.mark.parametrize(
    ("query", "accept", "parse"),
    [
        ("", None, yaml.safe_load),  # drf-spectacular's default: YAML
        ("?format=json", None, json.loads),
        ("", "application/vnd.oai.openapi+json", json.loads),
    ],
)
def test_the_schema_is_openapi_3_with_the_seed_routes_and_the_v1_resources(staff_client, query, accept, parse):
    headers = {"HTTP_ACCEPT": accept} if accept else {}
    response = staff_client.get(f"/api/schema/{query}", **headers)

    assert response.status_code == 200
    document = parse(response.content)
    assert document["openapi"].startswith("3.")
    assert document["info"]["title"] == settings.SPECTACULAR_SETTINGS["TITLE"]
    paths = document["paths"]
    assert {"/api/ingest", "/api/ingest/batch", "/api/user", "/api/cohort/user", "/api/health"} <= set(paths)
    assert "post" in paths["/api/ingest"] and "get" in paths["/api/user"] and "get" in paths["/api/cohort/user"]
    for resource in ("profiles", "raw-records", "import-runs", "cohort-members"):
        assert f"/api/v1/{resource}/" in paths and f"/api/v1/{resource}/{{id}}/" in paths
    bearer = document["components"]["securitySchemes"]["apiKey"]
    assert (bearer["type"], bearer["scheme"]) == ("http", "bearer")
