"""Property: profiles depend on the records, not on the road they took (contract, "Identity resolution")."""

import datetime as dt
import itertools

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.builders import ingest_batch, profiles_snapshot
from users_app.ingestion import profiles_rebuild

pytestmark = pytest.mark.django_db

START = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)

record_values = st.fixed_dictionaries(
    {
        "cookie": st.sampled_from(["c1", "c2", "c3", "c4", "c5", " c1 ", "", "null"]),
        "email": st.sampled_from(["a@x.com", "B@x.com", " b@x.com", "c@x.com", "", "not-an-email"]),
        "country": st.sampled_from(["", "India", "INDIA", "UK", "Japan"]),
        "state": st.sampled_from(["", "Tamil Nadu", "TAMIL NADU", "Scotland"]),
        "age": st.sampled_from(["", "30", "45", "abc"]),
        "gender": st.sampled_from(["", "Male", "f", "robot"]),
        "income": st.sampled_from(["", "$150,000+", "Under $25,000"]),
        "phone_number": st.sampled_from(["", "19337251087.0", "12473283662"]),
        "interests": st.lists(st.sampled_from(["Tech", "tech", "Gaming", "Travel"]), max_size=3).map("|".join),
    }
)


@st.composite
def record_sets(draw):
    values = draw(st.lists(record_values, min_size=1, max_size=20))
    minutes = draw(st.lists(st.integers(0, 500_000), min_size=len(values), max_size=len(values), unique=True))
    return [
        {**v, "created_at": (START + dt.timedelta(minutes=m)).isoformat()} for v, m in zip(values, minutes, strict=True)
    ]


def ingest_in_batches(records, cuts):
    """Ingest records split at the given cut points (batches of 1 behave like single API requests)."""
    bounds = [0, *sorted({c % (len(records) + 1) for c in cuts}), len(records)]
    for start, end in itertools.pairwise(bounds):
        if end > start:
            ingest_batch(records[start:end])


def outcome(records, cuts):
    with transaction.atomic():
        ingest_in_batches(records, cuts)
        ingested = profiles_snapshot()
        profiles_rebuild()
        rebuilt = profiles_snapshot()
        transaction.set_rollback(True)
    return ingested, rebuilt


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    records=record_sets(),
    order=st.randoms(use_true_random=False),
    cuts_a=st.lists(st.integers(0, 20), max_size=4),
    cuts_b=st.lists(st.integers(0, 20), max_size=6),
)
def test_any_arrival_order_and_batching_then_rebuild_give_identical_profiles(records, order, cuts_a, cuts_b):
    shuffled = list(records)
    order.shuffle(shuffled)

    first_ingested, first_rebuilt = outcome(records, cuts_a)
    second_ingested, second_rebuilt = outcome(shuffled, cuts_b)

    assert first_ingested == first_rebuilt
    assert second_ingested == second_rebuilt
    assert _without_arrival(first_ingested) == _without_arrival(second_ingested)


def _without_arrival(snapshot):
    # Raw records are listed per profile; their arrival order differs between the two runs.
    return {key: {**value, "raw_records": sorted(value["raw_records"])} for key, value in snapshot.items()}
