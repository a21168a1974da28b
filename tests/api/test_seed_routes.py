"""The seed's routes keep the request and response shapes its README showed."""

import copy

import pytest
from django.test import override_settings

from tests.api.conftest import SEED_RECORD, client_with
from users_app.access import api_key_create
from users_app.models import Profile, RawRecord

pytestmark = pytest.mark.django_db


def seed_record(**changes) -> dict:
    payload = copy.deepcopy(SEED_RECORD)
    payload["data"].update(changes)
    return payload


def test_ingest_accepts_the_seed_readme_example_verbatim_and_answers_201(ingest_client):
    response = ingest_client.post("/api/ingest", SEED_RECORD, format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "created"
    profile = Profile.objects.get(pk=body["profile_id"])
    assert (profile.country, profile.state, profile.city) == ("United States", "California", "Los Angeles")
    assert (profile.age, profile.gender, profile.income, profile.income_min) == (25, "Male", "50000", 50000)
    assert sorted(profile.interests.values_list("name", flat=True)) == ["Gaming", "Tech"]
    assert RawRecord.objects.get().data == SEED_RECORD["data"]  # stored exactly as sent


def test_ingest_answers_200_when_it_joins_a_known_person_and_says_so(ingest_client):
    first = ingest_client.post("/api/ingest", SEED_RECORD, format="json").json()
    response = ingest_client.post("/api/ingest", seed_record(cookie="second_device"), format="json")

    assert response.status_code == 200
    assert response.json()["status"] == "updated"
    assert response.json()["profile_id"] == first["profile_id"]
    assert Profile.objects.get().cookie_count == 2


def test_ingest_answers_200_merged_when_a_record_bridges_two_people(ingest_client):
    a = ingest_client.post("/api/ingest", seed_record(cookie="a", email="a@example.com"), format="json").json()
    ingest_client.post("/api/ingest", seed_record(cookie="b", email="b@example.com"), format="json")
    response = ingest_client.post("/api/ingest", seed_record(cookie="a", email="b@example.com"), format="json")

    assert (response.status_code, response.json()["status"]) == (200, "merged")
    assert response.json()["profile_id"] == a["profile_id"]
    assert Profile.objects.count() == 1


def test_ingest_accepts_iso_8601_created_at(ingest_client):
    response = ingest_client.post("/api/ingest", seed_record(created_at="2025-03-10T15:30:00Z"), format="json")
    assert response.status_code == 201
    assert Profile.objects.get().first_seen.isoformat() == "2025-03-10T15:30:00+00:00"


@pytest.mark.parametrize("how", ["body", "header"])
def test_the_same_message_id_sent_five_times_is_stored_once_with_the_same_answer(ingest_client, how):
    answers = []
    for _ in range(5):
        if how == "body":
            response = ingest_client.post("/api/ingest", {**SEED_RECORD, "message_id": "m-1"}, format="json")
        else:
            response = ingest_client.post("/api/ingest", SEED_RECORD, format="json", HTTP_IDEMPOTENCY_KEY="m-1")
        answers.append((response.status_code, response.json()["raw_record_id"], response.json()["profile_id"]))

    assert RawRecord.objects.count() == 1
    assert len(set(answers)) == 1
    assert answers[0][0] == 201


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "data"),
        ({"data": "not an object"}, "data"),
        ({"data": {"cookie": "c"}}, "created_at"),
        ({"data": {"cookie": "c", "created_at": "yesterday"}}, "created_at"),
        ({"data": {"created_at": "03/10/2025 15:30"}}, "cookie"),
        ({"data": {"cookie": ["a"], "created_at": "03/10/2025 15:30"}}, "cookie"),
        ({"data": {"cookie": "c", "created_at": "03/10/2025 15:30", "location": {"contry": "USA"}}}, "contry"),
        ({"data": {"cookie": "c", "created_at": "03/10/2025 15:30", "demographics": {"age": {"n": 1}}}}, "age"),
        ({"data": {"cookie": "c", "created_at": "03/10/2025 15:30", "interests": "x" * 5000}}, "interests"),
        ({"data": {"cookie": "c", "created_at": "03/10/2025 15:30", "interests": ["t"] * 101}}, "interests"),
        ({"data": {"cookie": "c" * 300, "created_at": "03/10/2025 15:30"}}, "cookie"),
        ({"data": {"cookie": "c", "created_at": "03/10/2025 15:30"}, "extra": 1}, "extra"),
    ],
)
def test_bad_input_gets_a_400_naming_the_field_and_stores_nothing(ingest_client, payload, field):
    response = ingest_client.post("/api/ingest", payload, format="json")

    assert response.status_code == 400, response.content
    assert field in response.content.decode()
    assert not RawRecord.objects.exists()


def test_a_body_that_is_not_json_is_a_400_and_a_wrong_content_type_a_415(ingest_client):
    assert ingest_client.post("/api/ingest", "{not json", content_type="application/json").status_code == 400
    assert ingest_client.post("/api/ingest", "a=b", content_type="application/x-www-form-urlencoded").status_code == 415


def test_deeply_nested_json_is_a_400_not_a_500(ingest_client):
    body = '{"data": ' + "[" * 100_000 + "]" * 100_000 + "}"
    response = ingest_client.post("/api/ingest", body, content_type="application/json")
    assert response.status_code in (400, 413)


def test_an_oversized_body_is_refused_with_413(ingest_client):
    payload = seed_record(notes="x" * 70_000)
    response = ingest_client.post("/api/ingest", payload, format="json")
    assert response.status_code == 413
    assert not RawRecord.objects.exists()


@override_settings(API_RATE_LIMITS={"ingest": "2/min", "read": "1000/min"})
def test_too_many_requests_from_one_key_get_429_with_retry_after(ingest_client):
    from django.core.cache import cache

    cache.clear()
    codes = [
        ingest_client.post("/api/ingest", seed_record(cookie=f"c{i}", email=f"c{i}@example.com"), format="json")
        for i in range(3)
    ]
    assert [r.status_code for r in codes] == [201, 201, 429]
    assert int(codes[-1]["Retry-After"]) > 0
    cache.clear()


@override_settings(API_RATE_LIMITS={"ingest": "1000/min", "read": "3/min"})
def test_each_key_has_its_own_count(read_client):
    from django.core.cache import cache

    cache.clear()
    other = client_with(api_key_create(name="another reader", scope="read")[1])
    assert [read_client.get("/api/cohort/user").status_code for _ in range(4)] == [200, 200, 200, 429]
    assert [other.get("/api/cohort/user").status_code for _ in range(3)] == [200, 200, 200]
    cache.clear()


def test_batch_ingest_gives_a_result_per_record_and_one_bad_record_does_not_sink_the_others(ingest_client):
    batch = [
        seed_record(cookie="b1", email="b1@example.com"),
        {"data": {"cookie": "b2", "created_at": "not a date"}},
        {"data": {"cookie": ["wrong type"], "created_at": "03/10/2025 15:30"}},
        seed_record(cookie="b3", email="b1@example.com"),
        {**seed_record(cookie="b4", email="b4@example.com"), "message_id": "batch-4"},
    ]
    response = ingest_client.post("/api/ingest/batch", {"batch": batch}, format="json")

    assert response.status_code == 200
    results = response.json()
    assert [r["status"] for r in results] == ["created", "rejected", "rejected", "updated", "created"]
    assert "created_at" in results[1]["errors"]["data"]
    assert "cookie" in str(results[2]["errors"])
    assert RawRecord.objects.count() == 3
    assert Profile.objects.count() == 2


@pytest.mark.parametrize("batch", [[], [SEED_RECORD] * 1001, "nope"])
def test_batch_outside_1_to_1000_records_is_a_400(ingest_client, batch):
    assert ingest_client.post("/api/ingest/batch", {"batch": batch}, format="json").status_code == 400
    assert not RawRecord.objects.exists()


def test_user_lookup_by_cookie_or_email_returns_the_seed_document_with_all_identifiers(ingest_client, read_client):
    ingest_client.post("/api/ingest", seed_record(created_at="03/10/2025 15:30"), format="json")
    ingest_client.post("/api/ingest", seed_record(cookie="phone", created_at="04/10/2025 15:30"), format="json")

    by_cookie = read_client.get("/api/user", {"cookie": "user_cookie_id"})
    by_email = read_client.get("/api/user", {"email": " USER@example.com "})

    assert by_cookie.status_code == by_email.status_code == 200
    assert by_cookie.json() == by_email.json()
    data = by_cookie.json()["data"]
    assert data["cookie"] == "phone"  # most recent
    assert data["email"] == "user@example.com"
    assert data["cookies"] == ["phone", "user_cookie_id"]
    assert data["emails"] == ["user@example.com"]
    assert data["created_at"] == data["first_seen"] == "2025-03-10T15:30:00Z"
    assert data["last_seen"] == "2025-04-10T15:30:00Z"
    assert data["location"] == {"state": "California", "country": "United States", "city": "Los Angeles"}
    assert data["demographics"] == {"age": 25, "gender": "Male", "income": "50000", "education": "Bachelor's"}
    assert data["interests"] == ["Gaming", "Tech"]
    assert data["phone_number"] == "1234567890"


def test_user_lookup_answers_404_json_for_nobody_and_400_without_parameters(read_client):
    missing = read_client.get("/api/user", {"email": "nobody@example.com"})
    assert missing.status_code == 404
    assert "detail" in missing.json()
    assert read_client.get("/api/user").status_code == 400


def test_user_lookup_needs_the_exact_identifier(ingest_client, read_client):
    ingest_client.post("/api/ingest", SEED_RECORD, format="json")
    assert read_client.get("/api/user", {"email": "user@"}).status_code == 404
    assert read_client.get("/api/user", {"cookie": "user_cookie"}).status_code == 404


def _multi_device(ingest_client, email, cookies, **data):
    for cookie in cookies:
        ingest_client.post("/api/ingest", seed_record(cookie=cookie, email=email, **data), format="json")


def test_cohort_route_lists_multi_device_people_matching_filters_as_seed_documents(ingest_client, read_client):
    _multi_device(ingest_client, "in@example.com", ["i1", "i2"])
    ingest_client.post(
        "/api/ingest",
        {"data": {**SEED_RECORD["data"], "cookie": "i3", "email": "in@example.com", "location": {"country": "INDIA"}}},
        format="json",
    )
    _multi_device(ingest_client, "us@example.com", ["u1", "u2"])
    ingest_client.post("/api/ingest", seed_record(cookie="single", email="single@example.com"), format="json")

    everyone = read_client.get("/api/cohort/user")
    india = read_client.get("/api/cohort/user", {"country": "india"})
    usa_alias = read_client.get("/api/cohort/user", {"country": "USA", "age_min": 20, "age_max": 30})

    assert everyone.status_code == 200
    assert everyone["X-Total-Count"] == "2"
    assert sorted(d["data"]["email"] for d in everyone.json()) == ["in@example.com", "us@example.com"]
    assert [d["data"]["email"] for d in india.json()] == ["in@example.com"]
    assert [d["data"]["cookies"] for d in usa_alias.json()] == [["u1", "u2"]]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"interests": "gaming"}, ["a@example.com", "b@example.com"]),
        ({"interests": "Travel,Food"}, ["b@example.com"]),
        ({"interests": ["food", "art"]}, ["b@example.com"]),
        ({"interests_all": "tech,gaming"}, ["a@example.com"]),
        ({"interests_all": ["gaming", "travel"]}, ["b@example.com"]),
        ({"gender": "f"}, ["b@example.com"]),
        ({"income_min": 100000}, ["b@example.com"]),
        ({"income_max": 30000}, ["a@example.com"]),
        ({"income": "under $25,000"}, ["a@example.com"]),
        ({"education": "doctorate"}, ["b@example.com"]),
        ({"state": "tamil nadu", "city": "CHENNAI"}, ["b@example.com"]),
        ({"email": "A@example.com"}, ["a@example.com"]),
        ({"cookie": "b2"}, ["b@example.com"]),
        ({"country": "Atlantis"}, []),
    ],
)
def test_cohort_filters(ingest_client, read_client, params, expected):
    a = {"demographics": {"gender": "Male", "income": "Under $25,000"}, "interests": ["Tech", "Gaming"]}
    b = {
        "demographics": {"gender": "Female", "income": "$150,000+", "education": "Doctorate"},
        "location": {"country": "India", "state": "Tamil Nadu", "city": "Chennai"},
        "interests": ["Gaming", "Travel", "Food"],
    }
    _multi_device(ingest_client, "a@example.com", ["a1", "a2"], **a)
    _multi_device(ingest_client, "b@example.com", ["b1", "b2"], **b)

    response = read_client.get("/api/cohort/user", params)

    assert response.status_code == 200
    assert sorted(d["data"]["email"] for d in response.json()) == expected


def test_cohort_route_pages_with_limit_and_offset_and_bounds_the_limit(ingest_client, read_client):
    for n in range(5):
        _multi_device(ingest_client, f"p{n}@example.com", [f"p{n}a", f"p{n}b"])
    page = read_client.get("/api/cohort/user", {"limit": 2, "offset": 2})
    assert [d["data"]["email"] for d in page.json()] == ["p2@example.com", "p3@example.com"]
    assert page["X-Total-Count"] == "5"
    assert len(read_client.get("/api/cohort/user", {"limit": 5000}).json()) == 5


def test_cohort_route_answers_an_empty_list_not_404_when_nobody_matches(read_client):
    response = read_client.get("/api/cohort/user", {"country": "Japan"})
    assert (response.status_code, response.json(), response["X-Total-Count"]) == (200, [], "0")


def test_health_answers_anonymously_with_database_state(client):
    response = client.get("/api/health")
    assert (response.status_code, response.json()) == (200, {"status": "OK", "database": "ok"})


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ('{"data": {"cookie": "a\\u0000b", "created_at": "03/10/2025 15:30"}}', "cookie"),
        ('{"data": {"cookie": "c", "created_at": "03/10/2025 15:30", "note": "\\ud800"}}', "note"),
        ('{"data": {"cookie": "c", "created_at": "03/10/2025 15:30", "location": {"city": "\\u0000"}}}', "location"),
        ('{"data": {"cookie": "c", "created_at": "03/10/2025 15:30"}, "message_id": "m\\u0000"}', "message_id"),
    ],
)
def test_text_the_database_cannot_store_is_a_400_naming_the_field(ingest_client, body, field):
    response = ingest_client.post("/api/ingest", body, content_type="application/json")
    assert response.status_code == 400, response.content
    assert field in response.content.decode()
    assert not RawRecord.objects.exists()


@pytest.mark.parametrize(
    "params",
    [
        {"interests": "a\x00b"},
        {"interests_all": "\x00"},
        {"state": "\x00"},
        {"limit": "null"},
        {"offset": "-1"},
        {"limit": "0"},
        {"age_min": "old"},
        {"first_seen_after": "not-a-date"},
    ],
)
def test_invalid_cohort_query_parameters_are_a_400(read_client, params):
    assert read_client.get("/api/cohort/user", params).status_code == 400


def test_an_extreme_utc_offset_in_a_date_filter_is_compared_in_utc(read_client):
    response = read_client.get("/api/cohort/user", {"first_seen_after": "2025-01-01T00:00:00+23:00"})
    assert (response.status_code, response.json()) == (200, [])


@pytest.mark.parametrize("params", [{"cookie": "\x00"}, {"email": "a\x00@example.com"}, {"cookie": "c" * 300}])
def test_invalid_user_lookup_parameters_are_a_400(read_client, params):
    assert read_client.get("/api/user", params).status_code == 400
