"""``import_csv``: the file format, rejects, dry runs, idempotence, resumption and the writer lock."""

import csv
import io
import json

import pytest
from django.core.management import CommandError, call_command
from django.db import IntegrityError, transaction

from tests.builders import (
    database_snapshot,
    indexes,
    profile_for,
    record,
    write_csv,
    writer_lock_held_elsewhere,
)
from users_app.importing import csv_import
from users_app.models import Identifier, ImportReject, ImportRun, Profile, ProfileMerge, RawRecord

pytestmark = pytest.mark.django_db


def run_import(path, *args):
    """Run the command and return its last line parsed as the JSON summary."""
    from io import StringIO

    out = StringIO()
    call_command("import_csv", str(path), "--json", *args, stdout=out)
    return json.loads(out.getvalue().strip().splitlines()[-1])


def test_json_summary_is_the_last_line_with_the_documented_keys(tmp_path):
    path = write_csv(tmp_path / "a.csv", [record(cookie="A"), record(cookie="B", email="")])
    summary = run_import(path)
    assert {"rows", "accepted", "rejected", "warnings", "profiles_created", "merges"} <= summary.keys()
    assert (summary["rows"], summary["accepted"], summary["rejected"], summary["profiles_created"]) == (2, 2, 0, 2)


def test_a_utf8_bom_is_accepted(tmp_path):
    path = write_csv(tmp_path / "bom.csv", [record(cookie="A", city="São Paulo")], bom=True)
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    summary = run_import(path)
    assert summary["accepted"] == 1
    assert Profile.objects.get().city == "São Paulo"
    assert "cookie" in RawRecord.objects.get().data


def test_column_order_does_not_matter_and_extra_columns_are_kept_in_the_raw_record(tmp_path):
    header = ["campaign", "created_at", "interests", "email", "cookie", "country"]
    rows = [
        {"campaign": "spring", "created_at": "1/1/2025 0:00", "email": "a@example.com", "cookie": "A", "country": "USA"}
    ]
    summary = run_import(write_csv(tmp_path / "shuffled.csv", rows, header=header))
    assert summary["accepted"] == 1
    assert RawRecord.objects.get().data["campaign"] == "spring"
    assert profile_for("email", "a@example.com").country == "United States"


def test_quoted_commas_and_newlines_stay_inside_their_field_and_line_numbers_follow_the_file(tmp_path):
    path = tmp_path / "quoted.csv"
    path.write_text(
        "cookie,email,created_at,income,city\n"
        'A,a@example.com,1/1/2025 0:00,"$75,000-$99,999","Multi\nLine"\n'
        ",,1/1/2025 0:00,,\n",
        encoding="utf-8",
    )
    summary = run_import(path)
    assert (summary["accepted"], summary["rejected"]) == (1, 1)
    profile = Profile.objects.get()
    assert (profile.income_min, profile.income_max) == (75000, 99999)
    assert profile.city == "Multi Line"
    assert RawRecord.objects.get().data["city"] == "Multi\nLine"  # the original is kept
    assert ImportReject.objects.get().line_number == 4  # the record spans lines 2-3


def test_rejected_rows_go_to_the_reject_file_with_line_reason_and_original_text(tmp_path):
    path = write_csv(
        tmp_path / "mixed.csv",
        [record(cookie="A"), record(cookie="", email=""), record(cookie="B", created_at="not a date")],
    )
    rejects_path = tmp_path / "rejects.csv"
    summary = run_import(path, "--reject-file", str(rejects_path))
    assert (summary["rows"], summary["accepted"], summary["rejected"]) == (3, 1, 2)
    with rejects_path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["line_number"] for r in rows] == ["3", "4"]
    assert "no usable identifier" in rows[0]["reason"]
    assert "created_at" in rows[1]["reason"] and "not a date" in rows[1]["original"]
    assert RawRecord.objects.count() == 1


def test_warnings_are_counted_and_kept_on_the_raw_record(tmp_path):
    path = write_csv(tmp_path / "w.csv", [record(cookie="A", age="200", gender="robot"), record(cookie="B")])
    summary = run_import(path)
    assert (summary["accepted"], summary["warnings"]) == (2, 1)
    warnings = RawRecord.objects.get(data__cookie="A").warnings
    assert [w.split(":")[0] for w in warnings] == ["age", "gender"]


def test_a_row_wider_or_narrower_than_the_header_is_kept_with_a_warning(tmp_path):
    path = tmp_path / "ragged.csv"
    path.write_text("cookie,email,created_at\nA,a@example.com,1/1/2025 0:00,surplus\nB\n", encoding="utf-8")
    summary = run_import(path)
    assert (summary["accepted"], summary["rejected"], summary["warnings"]) == (1, 1, 1)
    assert RawRecord.objects.get().data["_extra_values"] == ["surplus"]


def test_importing_the_same_file_twice_adds_nothing(tmp_path):
    path = write_csv(tmp_path / "twice.csv", [record(cookie="A"), record(cookie="B")])
    run_import(path)
    before = database_snapshot()
    summary = run_import(path)
    assert summary["already_imported"] is True
    assert summary["accepted"] == 0
    assert database_snapshot() == before


def test_dry_run_reports_exact_figures_and_stores_nothing(tmp_path):
    path = write_csv(
        tmp_path / "dry.csv",
        [
            record(cookie="A", email="x@example.com"),
            record(cookie="B", email="x@example.com"),
            record(cookie="", email=""),
        ],
    )
    summary = run_import(path, "--dry-run")
    assert (summary["rows"], summary["accepted"], summary["rejected"], summary["profiles_created"]) == (3, 2, 1, 1)
    assert summary["dry_run"] is True
    assert not RawRecord.objects.exists() and not Profile.objects.exists() and not ImportRun.objects.exists()


def test_an_offline_import_stores_what_a_batched_import_stores(tmp_path):
    path = write_csv(
        tmp_path / "people.csv",
        [
            record(cookie="A", email="x@example.com", interests="Tech"),
            record(cookie="B", email="y@example.com", age="40"),
            record(cookie="B", email="x@example.com", country="Japan"),
            record(cookie="", email=""),
            record(cookie="C", phone_number="not a phone"),
        ],
    )
    batched_summary = run_import(path, "--batch-size", "2")
    batched = database_snapshot()
    for model in (ProfileMerge, ImportReject, RawRecord, Profile, ImportRun):
        model.objects.all().delete()

    summary = run_import(path, "--offline", "--batch-size", "2")

    assert (summary["accepted"], summary["rejected"], summary["merges"], summary["warnings"]) == (4, 1, 1, 1)
    ignored = {"seconds": 0, "import_run": 0, "first_load": False}  # PostgreSQL takes the first load
    assert summary | ignored == batched_summary | ignored
    assert database_snapshot() == batched


LOOKUP_INDEXES = {"identifier_unique_kind_value", "identifier_profile_idx", "rawrecord_unique_source_key"}


@pytest.mark.parametrize(
    ("first_load_max_records", "kept"),
    # Batch by batch, the load keeps what it looks rows up by (unique indexes, the profile a merge
    # hands rows over from); a first load looks nothing up and keeps only primary keys.
    [(0, LOOKUP_INDEXES), (1000, set())],
    ids=["batch by batch", "first load"],
)
def test_an_offline_import_builds_the_indexes_it_set_aside_again(
    tmp_path, postgres, settings, first_load_max_records, kept
):
    settings.FIRST_LOAD_MAX_RECORDS = first_load_max_records
    path = write_csv(
        tmp_path / "people.csv",
        [record(cookie="A", email="x@example.com"), record(cookie="B", email="x@example.com"), record(cookie="C")],
    )
    before = indexes()
    during = []

    csv_import(path=path, offline=True, batch_size=1, progress=lambda done, total: during.append(indexes()))

    assert indexes() == before
    set_aside = {name for _, name, _ in before} - {name for _, name, _ in during[0]}
    plain = {"profile_country_age_idx", "rawrecord_created_at_idx", "profileinterest_by_interest"}
    assert plain | (LOOKUP_INDEXES - kept) <= set_aside
    assert not kept & set_aside and not any(name.endswith("_pkey") for name in set_aside)
    assert sorted(Profile.objects.values_list("cookie_count", flat=True)) == [1, 2]
    with pytest.raises(IntegrityError), transaction.atomic():  # the unique index is back at work
        Identifier.objects.create(kind="cookie", value="A", profile=Profile.objects.first())


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"name,age\nx,1\n", "no cookie or email nor created_at column"),
        (b"cookie,email\nA,a@example.com\n", "no created_at column"),
        (b"cookie,cookie,created_at\n", "twice"),
        (b"cookie,created_at\nA,1/1/2025 0:00\nB\xff\xfe,1/1/2025 0:00\n", "line 3 is not valid UTF-8"),
    ],
)
def test_a_file_that_cannot_be_imported_is_refused_with_a_clear_error_and_nothing_stored(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(CommandError, match=message):
        call_command("import_csv", str(path))
    assert not RawRecord.objects.exists() and not ImportRun.objects.exists()


def test_a_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(CommandError, match="no such file"):
        call_command("import_csv", str(tmp_path / "missing.csv"))


def test_an_interrupted_import_resumes_and_ends_as_one_clean_run(tmp_path):
    rows = [record(cookie=f"c{i % 7}", email=f"p{i % 5}@example.com", age=str(20 + i)) for i in range(30)]
    rows.insert(10, record(cookie="", email=""))
    path = write_csv(tmp_path / "resume.csv", rows)

    with transaction.atomic():
        call_command("import_csv", str(path), "--batch-size", "4")
        clean = database_snapshot()
        transaction.set_rollback(True)
    assert not RawRecord.objects.exists()

    def stop_after_two_batches(done, total, calls=[]):  # noqa: B006 - the list counts calls
        calls.append(done)
        if len(calls) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        csv_import(path=path, batch_size=4, progress=stop_after_two_batches)
    run = ImportRun.objects.get()
    assert (run.status, run.lines_done, RawRecord.objects.count()) == ("interrupted", 9, 8)

    summary = csv_import(path=path, batch_size=4)
    assert summary.resumed_after_line == 9
    assert database_snapshot() == clean


def test_a_second_import_while_one_runs_is_refused_with_a_clear_message(tmp_path):
    path = write_csv(tmp_path / "busy.csv", [record(cookie="A")])
    with writer_lock_held_elsewhere(), pytest.raises(CommandError, match="Another import or rebuild is running"):
        call_command("import_csv", str(path))
    assert not RawRecord.objects.exists()
    run_import(path)
    assert RawRecord.objects.count() == 1


def test_an_import_told_to_wait_says_so_and_runs_once_the_other_writer_is_done(tmp_path):
    path = write_csv(tmp_path / "queued.csv", [record(cookie="A"), record(cookie="B")])
    stderr = io.StringIO()
    with writer_lock_held_elsewhere(seconds=1):  # the other writer finishes after 1 s
        call_command("import_csv", str(path), "--wait", stdout=io.StringIO(), stderr=stderr)
    assert "Another import or rebuild is running; waiting for it to finish" in stderr.getvalue()
    assert RawRecord.objects.count() == 2
    assert ImportRun.objects.get().status == ImportRun.Status.COMPLETED
