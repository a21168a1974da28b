import pytest
from rest_framework.test import APIClient

from users_app.access import api_key_create

SEED_RECORD = {
    "data": {
        "cookie": "user_cookie_id",
        "email": "user@example.com",
        "phone_number": "1234567890",
        "created_at": "03/10/2025 15:30",
        "location": {"state": "California", "country": "USA", "city": "Los Angeles"},
        "demographics": {"age": 25, "gender": "Male", "income": "50000", "education": "Bachelor's"},
        "interests": ["Tech", "Gaming"],
    }
}


@pytest.fixture
def ingest_key(db) -> str:
    return api_key_create(name="tests ingest", scope="ingest")[1]


@pytest.fixture
def read_key(db) -> str:
    return api_key_create(name="tests read", scope="read")[1]


@pytest.fixture
def erase_key(db) -> str:
    return api_key_create(name="tests erase", scope="erase")[1]


@pytest.fixture
def govern_key(db) -> str:
    return api_key_create(name="tests govern", scope="govern")[1]


def client_with(key: str | None) -> APIClient:
    client = APIClient()
    if key:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


@pytest.fixture
def ingest_client(ingest_key) -> APIClient:
    return client_with(ingest_key)


@pytest.fixture
def read_client(read_key) -> APIClient:
    return client_with(read_key)


@pytest.fixture
def govern_client(govern_key) -> APIClient:
    return client_with(govern_key)


@pytest.fixture
def staff_client(db, django_user_model) -> APIClient:
    user = django_user_model.objects.create_user("staff", password="pw", is_staff=True)
    client = APIClient()
    client.force_login(user)
    return client
