# The API's key fixtures, for the report endpoints tested here.
from tests.api.conftest import ingest_client, ingest_key, read_client, read_key  # noqa: F401
