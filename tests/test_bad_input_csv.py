"""``import_csv`` against the bad input corpus: a clear error naming the line or column, nothing half-stored.

A file that is unusable as a whole (encoding, binary, no header, no rows, too wide) is refused with a
non-zero exit and leaves every table exactly as it was. A file with some bad rows imports the good
ones and lists each bad one in the reject report with its line number and reason (the contract's
rejects).
"""

import csv
import subprocess
import sys
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from tests.bad_input import GOOD_ROW, HEADER, MEGABYTE, UNUSABLE_FILES, data_snapshot, seed_existing_data
from tests.builders import PROJECT_DIR
from users_app.importing import MAX_COLUMNS, MAX_ROW_CHARS
from users_app.models import ImportReject, ImportRun, Profile, RawRecord

pytestmark = pytest.mark.django_db


@pytest.fixture
def seeded(tmp_path):
    seed_existing_data(tmp_path)
    return data_snapshot()


@pytest.mark.parametrize("bad", UNUSABLE_FILES, ids=[bad.id for bad in UNUSABLE_FILES])
def test_an_unusable_file_is_refused_naming_the_problem_and_every_table_is_as_it_was(tmp_path, seeded, bad):
    path = bad.write(tmp_path)
    with pytest.raises(CommandError) as refused:
        call_command("import_csv", str(path), stdout=StringIO())
    assert str(refused.value).startswith(f"bad.csv: {bad.message}")
    assert data_snapshot() == seeded


@pytest.mark.parametrize("bad", [bad for bad in UNUSABLE_FILES if bad.id in ("header-only", "utf-16-without-bom")])
def test_a_dry_run_of_an_unusable_file_is_refused_the_same_way(tmp_path, seeded, bad):
    with pytest.raises(CommandError) as refused:
        call_command("import_csv", str(bad.write(tmp_path)), "--dry-run", stdout=StringIO())
    assert str(refused.value).startswith(f"bad.csv: {bad.message}")
    assert data_snapshot() == seeded


def test_the_command_exits_non_zero_with_the_message_on_stderr(tmp_path):
    """The real process, as a shell script or cron job sees it (the database is never reached)."""
    path = tmp_path / "latin.csv"
    path.write_bytes((HEADER + "jos\xe9,,1/1/2025 0:00,,\n").encode("latin-1"))
    done = subprocess.run(
        [sys.executable, "manage.py", "import_csv", str(path)],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=60,
        env={"DJANGO_SETTINGS_MODULE": "analytics_site.test_settings", "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 1
    assert "latin.csv: line 2 is not valid UTF-8" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_file_with_bad_rows_imports_the_good_ones_and_reports_each_bad_line(tmp_path, seeded):
    ten_mb_row = "big-cookie,big@example.com,1/1/2025 0:00,India," + "x" * (10 * MEGABYTE) + "\n"
    wide_row = "wide-cookie,wide@example.com,1/1/2025 0:00" + ",v" * 5000 + "\n"
    path = tmp_path / "mixed.csv"
    path.write_text(
        HEADER
        + GOOD_ROW  # line 2
        + ",,1/1/2025 0:00,India,\n"  # line 3: no identifier
        + "c3,c3@example.com,yesterday,,\n"  # line 4: unreadable date
        + ten_mb_row  # line 5
        + wide_row  # line 6
        + "c7,c7@example.com,1/1/2025 0:00,,"
        + "x" * 200
        + "|Tech\n"  # line 7: kept, one interest too long is a warning
        + 'c8,c8@example.com,"1/1/2025 0:00,,\nc9,c9@example.com,1/1/2025 0:00,,\n',  # 8-9: one quoted field
        encoding="utf-8",
    )
    rejects_path = tmp_path / "rejects.csv"
    out = StringIO()
    call_command("import_csv", str(path), "--reject-file", str(rejects_path), stdout=out)

    assert "7 rows, 2 accepted, 5 rejected, 1 with warnings" in out.getvalue()
    with rejects_path.open(newline="", encoding="utf-8") as handle:
        rejects = {int(row["line_number"]): row for row in csv.DictReader(handle)}
    assert sorted(rejects) == [3, 4, 5, 6, 8]
    assert "no usable identifier" in rejects[3]["reason"]
    assert "created_at: cannot read 'yesterday'" in rejects[4]["reason"]
    assert rejects[5]["reason"] == (
        f"the row is {len(ten_mb_row) - 1:,} characters long; at most {MAX_ROW_CHARS:,} are accepted "
        f"(this report keeps its first {MAX_ROW_CHARS:,})"
    )
    assert len(rejects[5]["original"]) == MAX_ROW_CHARS and rejects[5]["original"].startswith("big-cookie,")
    assert rejects[6]["reason"] == f"the row has 5,003 values; at most {MAX_COLUMNS:,} are accepted"
    assert rejects[6]["original"] == wide_row.rstrip("\n")
    # An unclosed quote runs to the end of the file: one row, lines 8-9, whose created_at is the quoted text.
    assert "created_at: cannot read '1/1/2025 0:00,,\nc9," in rejects[8]["reason"]

    new_raw = RawRecord.objects.exclude(pk__in=[row["id"] for row in seeded["users_app.RawRecord"]])
    assert sorted(new_raw.values_list("line_number", flat=True)) == [2, 7]
    assert sorted(RawRecord.objects.get(line_number=7, import_run__file_name="mixed.csv").warnings) == [
        "interests: an entry is longer than 100 characters"
    ]
    assert not RawRecord.objects.filter(data__cookie__in=["big-cookie", "wide-cookie"]).exists()
    assert ImportRun.objects.get(file_name="mixed.csv").status == ImportRun.Status.COMPLETED
    assert ImportReject.objects.filter(import_run__file_name="mixed.csv").count() == 5
    assert Profile.objects.filter(identifiers__value="good@example.com").get().country == "India"


def test_a_field_over_the_csv_readers_limit_is_rejected_alone(tmp_path):
    path = tmp_path / "huge-field.csv"
    path.write_text(
        HEADER + '"' + "y" * (16 * MEGABYTE + 1) + '",,1/1/2025 0:00,,\n' + GOOD_ROW,
        encoding="utf-8",
    )
    out = StringIO()
    call_command("import_csv", str(path), "--json", stdout=out)
    assert list(ImportReject.objects.values_list("line_number", "reason")) == [
        (2, "unreadable CSV (field larger than field limit (16777216))")
    ]
    assert len(ImportReject.objects.get().original) == MAX_ROW_CHARS
    assert list(RawRecord.objects.values_list("data__cookie", flat=True)) == ["good-cookie"]


def test_huge_lists_of_interests_are_a_warning_or_a_too_long_row_never_thousands_of_interests(tmp_path):
    many = "|".join(f"i{n}" for n in range(5000))  # ~29,000 characters: a row within the limit
    too_many = "|".join(f"i{n}" for n in range(100_000))  # ~690,000 characters: too long a row
    path = tmp_path / "interests.csv"
    path.write_text(
        HEADER + f"c2,c2@example.com,1/1/2025 0:00,India,{many}\nc3,c3@example.com,1/1/2025 0:00,,{too_many}\n",
        encoding="utf-8",
    )
    call_command("import_csv", str(path), stdout=StringIO())

    raw = RawRecord.objects.get()
    assert raw.warnings == ["interests: 5,000 different entries, more than 100; none kept"]
    assert raw.data["interests"] == many  # the raw record keeps what was sent
    profile = Profile.objects.get()
    assert (profile.country, profile.interests.count()) == ("India", 0)
    reject = ImportReject.objects.get()
    assert reject.line_number == 3 and reject.reason.startswith("the row is 688,922 characters long")
