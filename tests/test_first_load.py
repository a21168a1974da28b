"""The first load (``users_app.first_load``) stores what the batch resolver stores, table by table."""

import itertools
from collections import defaultdict

import pytest
from django.test import override_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.builders import SAMPLE_FILE, full_snapshot, record, snapshot_after, write_csv
from tests.test_properties import record_sets, record_values
from users_app.first_load import FirstLoad, first_load_possible
from users_app.importing import csv_import
from users_app.ingestion import profiles_rebuild
from users_app.models import (
    BlockedIdentifier,
    IdentityGuards,
    ImportReject,
    ImportRun,
    Interest,
    Profile,
    ProfileMerge,
    RawRecord,
    Suppression,
)
from users_app.resolution import resolve_records
from users_app.sample_data import generate_sample_csv

pytestmark = pytest.mark.django_db


def clear_store() -> None:
    for model in (ProfileMerge, ImportReject, RawRecord, Profile, ImportRun, Interest):
        model.objects.all().delete()


def load(records: list[dict], *, batch: int, first_load: bool) -> dict:
    """The whole store after ``records`` in batches through one resolver or the other."""
    if not first_load:
        return snapshot_after(records, batch=batch, resolve=resolve_records)
    loader = FirstLoad()
    return snapshot_after(records, batch=batch, resolve=loader.resolve, then=loader.finish)


@st.composite
def record_sets_with_ties(draw):
    """Like ``record_sets`` but many records share a created_at: the record id breaks the tie."""
    values = draw(st.lists(record_values, min_size=1, max_size=20))
    return [{**v, "created_at": f"1/{draw(st.integers(1, 3))}/2025 10:00"} for v in values]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    records=st.one_of(record_sets(), record_sets_with_ties()),
    batch_a=st.integers(1, 8),
    batch_b=st.integers(1, 25),
    match_phone=st.booleans(),
)
def test_any_records_give_what_the_batch_resolver_gives(records, batch_a, batch_b, match_phone):
    with override_settings(IDENTITY_MATCH_PHONE=match_phone):
        assert load(records, batch=batch_b, first_load=True) == load(records, batch=batch_a, first_load=False)


def test_merges_trait_conflicts_and_interest_names_match_the_batch_resolver():
    records = [
        record(cookie="A", email="", age="30", created_at="3/1/2025 10:00", interests="MoVies"),
        record(cookie="B", email="b@x.com", age="40", created_at="1/1/2025 10:00", interests="movies|Tech"),
        record(cookie="C", email="c@x.com", country="Japan", created_at="2/1/2025 10:00"),
        # Joins A and B through their identifiers, then C: a chain of merges into the earliest seen.
        record(cookie="A", email="b@x.com", created_at="4/1/2025 10:00", interests="Travel"),
        record(cookie="D", email="c@x.com", created_at="12/1/2024 10:00", gender="f"),
        record(cookie="D", email="b@x.com", age="", created_at="5/1/2025 10:00"),
        record(cookie="null", email="", created_at="5/1/2025 10:00"),  # rejected: a placeholder only
    ]
    first = load(records, batch=2, first_load=True)

    assert first == load(records, batch=1, first_load=False)
    assert len(first["profiles"]) == 1 and len(first["ledger"]) == 2
    (profile,) = first["profiles"].values()
    assert (profile["age"], profile["country"], profile["gender"], profile["cookie_count"]) == (
        30,
        "Japan",
        "Female",
        4,
    )
    assert ("movies", "MoVies") in first["interests"]  # the first record to name it names it


def test_an_offline_import_of_a_generated_file_takes_the_first_load_and_stores_what_a_batched_one_stores(tmp_path):
    path = tmp_path / "generated.csv"
    generate_sample_csv(out=path, rows=6000, seed=11, malformed=True)
    batched = csv_import(path=path, batch_size=500)
    expected = full_snapshot()
    clear_store()

    summary = csv_import(path=path, batch_size=700, offline=True)

    assert summary.first_load and not batched.first_load
    assert full_snapshot() == expected
    assert summary.rejected == batched.rejected > 0
    assert Profile.objects.multi_device().exists()
    assert summary.as_dict() | {"seconds": 0, "import_run": 0, "first_load": False} == batched.as_dict() | {
        "seconds": 0,
        "import_run": 0,
    }


@pytest.mark.skipif(not SAMPLE_FILE.exists(), reason=f"needs the prototype's sample file at {SAMPLE_FILE}")
def test_the_prototype_sample_file_loads_the_same_on_both_roads():
    csv_import(path=SAMPLE_FILE)
    expected = full_snapshot()
    clear_store()

    assert csv_import(path=SAMPLE_FILE, offline=True).first_load
    assert full_snapshot() == expected


def test_an_offline_import_into_a_store_with_profiles_takes_the_batch_road(tmp_path):
    first = write_csv(tmp_path / "first.csv", [record(cookie="A", email="x@example.com")])
    second = write_csv(tmp_path / "second.csv", [record(cookie="B", email="x@example.com")])
    assert csv_import(path=first, offline=True).first_load

    summary = csv_import(path=second, offline=True)

    assert not summary.first_load
    assert Profile.objects.get().cookie_count == 2


@pytest.mark.parametrize(
    "setup",
    [
        lambda: IdentityGuards.objects.create(max_cookies_per_email=3),
        lambda: Suppression.objects.create(kind="email", value_hash="0" * 64),
    ],
    ids=["a guard with a cap", "an erased person"],
)
def test_link_guards_and_erasures_keep_a_load_on_the_batch_road(setup):
    assert first_load_possible(10)
    setup()
    assert not first_load_possible(10)


def test_the_block_list_applies_on_the_first_load(tmp_path):
    BlockedIdentifier.objects.create(kind="email", value="shared@example.com")
    path = write_csv(
        tmp_path / "blocked.csv",
        [record(cookie="A", email="shared@example.com"), record(cookie="B", email="shared@example.com")],
    )
    summary = csv_import(path=path, offline=True)
    assert summary.first_load and summary.profiles_created == 2 and summary.warnings == 2


def test_records_per_profile_and_ids_follow_arrival_order():
    # Profile ids are the founding records' ids on both roads.
    records = [record(cookie=c, email=e) for c, e in itertools.product("AB", ["p@x.com", "q@x.com"])]
    snapshot = load(records, batch=3, first_load=True)
    founders = defaultdict(list)
    for key, *_, founder in snapshot["raw_records"]:
        founders[founder].append(key)
    assert dict(founders) == {"k0000": ["k0000", "k0001", "k0002", "k0003"]}


def test_a_load_larger_than_the_setting_takes_the_batch_road(tmp_path):
    path = write_csv(tmp_path / "three.csv", [record(), record(), record()])
    with override_settings(FIRST_LOAD_MAX_RECORDS=2):
        assert not csv_import(path=path, offline=True).first_load
    assert Profile.objects.count() == 3


@pytest.mark.parametrize("offline", [False, True], ids=["live", "offline"])
def test_a_rebuild_resolved_in_memory_gives_what_the_batch_resolver_gives(tmp_path, offline):
    path = tmp_path / "generated.csv"
    generate_sample_csv(out=path, rows=3000, seed=5, malformed=True)
    csv_import(path=path, batch_size=400)
    records = [record(cookie="A", email="m@x.com"), record(cookie="B", email="n@x.com")]
    records.append(record(cookie="A", email="n@x.com", created_at="1/1/2020 0:00"))  # a merge
    write_csv(tmp_path / "merge.csv", records)
    csv_import(path=tmp_path / "merge.csv")
    with override_settings(FIRST_LOAD_MAX_RECORDS=0):
        assert not profiles_rebuild(batch_size=700, offline=offline).first_load
    expected = full_snapshot()
    Profile.objects.update(age=None, trait_sources={})  # drift the rebuild must undo

    result = profiles_rebuild(batch_size=500, offline=offline)

    assert result.first_load and result.merges == 1
    assert full_snapshot() == expected
