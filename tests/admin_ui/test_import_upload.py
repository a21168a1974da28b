"""The admin's CSV import: upload, progress, summary and reject report, running ``manage.py import_csv``'s code."""

import csv
import io
import json
import threading

import pytest
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from tests.builders import database_snapshot, record, write_csv, writer_lock_held_elsewhere
from users_app.importing import IMPORT_THREAD_NAME, csv_import
from users_app.models import ImportRun, Profile, RawRecord

# The import runs in a thread with its own database connection: it must see committed data.
pytestmark = pytest.mark.django_db(transaction=True)

UPLOAD = "admin:import-upload"
FORMULA = "=1+2*cmd|A0"


@pytest.fixture(autouse=True)
def upload_dir(settings, tmp_path):
    settings.IMPORT_UPLOAD_DIR = tmp_path / "uploads"
    return settings.IMPORT_UPLOAD_DIR


@pytest.fixture
def people_csv(tmp_path):
    """Two records of one person, a record with no identifier and one with a formula and a bad date."""
    return write_csv(
        tmp_path / "people.csv",
        [
            record(cookie="A", email="x@example.com", country="India"),
            record(cookie="B", email="x@example.com"),
            record(cookie="", email=""),
            record(cookie=FORMULA, email="", created_at="not a date"),
        ],
    )


def wait_for_imports() -> None:
    for thread in threading.enumerate():
        if thread.name.startswith(IMPORT_THREAD_NAME):
            thread.join(timeout=120)
            assert not thread.is_alive(), "the import thread did not end"


def upload(client, file) -> object:
    """Post the file on the upload page and wait for the import it started."""
    if not isinstance(file, SimpleUploadedFile):
        file = SimpleUploadedFile(file.name, file.read_bytes())
    response = client.post(reverse(UPLOAD), {"file": file})
    wait_for_imports()
    return response


def progress(client, run_id: int) -> dict:
    response = client.get(reverse("admin:import-progress-json", args=[run_id]))
    assert response.status_code == 200
    return response.json()


def reject_report(client, run_id: int) -> list[dict]:
    response = client.get(reverse("admin:import-rejects", args=[run_id]))
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))


def stored_uploads(upload_dir) -> list:
    return sorted(upload_dir.rglob("*")) if upload_dir.exists() else []


def test_an_uploaded_file_is_imported_as_the_command_would_and_its_progress_reports_the_totals(
    admin_client, people_csv, upload_dir
):
    out = io.StringIO()
    call_command("import_csv", str(people_csv), "--dry-run", "--json", stdout=out)
    command = json.loads(out.getvalue().splitlines()[-1])

    response = upload(admin_client, people_csv)

    run = ImportRun.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:import-progress", args=[run.pk])
    assert run.status == ImportRun.Status.COMPLETED and run.file_name == "people.csv"
    assert Profile.objects.get().country == "India"
    figures = progress(admin_client, run.pk)
    keys = ("rows", "accepted", "rejected", "warnings", "profiles_created", "merges")
    assert {key: figures[key] for key in keys} == {key: command[key] for key in keys}
    assert (figures["rows"], figures["accepted"], figures["rejected"], figures["profiles_created"]) == (4, 2, 2, 1)
    assert (figures["status"], figures["finished"], figures["percent"]) == ("completed", True, 100)
    assert figures["total_lines"] == 5 and figures["file_name"] == "people.csv"
    assert stored_uploads(upload_dir) == []  # the upload's copy is deleted once imported


def test_the_progress_page_shows_the_bar_and_the_final_summary_with_the_reject_report_link(admin_client, people_csv):
    upload(admin_client, people_csv)
    run = ImportRun.objects.get()
    page = admin_client.get(reverse("admin:import-progress", args=[run.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="import-progress-bar"' in html and "people.csv" in html
    assert 'id="import-summary" class="module" data-status="completed"' in html
    assert "Imported 4 rows: 2 accepted, 2 rejected" in html
    assert reverse("admin:import-rejects", args=[run.pk]) in html
    assert "users_app/import_progress.js" in html


def test_a_running_import_shows_its_share_of_lines_done_and_no_summary_yet(admin_client):
    run = ImportRun.objects.create(file_name="big.csv", sha256="1" * 64, total_lines=200, lines_done=50, rows=49)
    figures = progress(admin_client, run.pk)
    assert (figures["status"], figures["finished"], figures["percent"], figures["summary"]) == (
        "running",
        False,
        25,
        "",
    )
    html = admin_client.get(reverse("admin:import-progress", args=[run.pk])).content.decode()
    assert 'id="import-summary" class="module" hidden' in html and "data-status" not in html


def test_the_reject_report_lists_each_rejected_line_with_its_reason_and_defuses_formulas(admin_client, people_csv):
    upload(admin_client, people_csv)
    rows = reject_report(admin_client, ImportRun.objects.get().pk)
    assert list(rows[0]) == ["line_number", "reason", "original"]
    assert [row["line_number"] for row in rows] == ["4", "5"]
    assert "no usable identifier" in rows[0]["reason"] and "created_at" in rows[1]["reason"]
    assert rows[1]["original"].startswith("'" + FORMULA)  # a spreadsheet shows it as text, never runs it


def test_the_same_file_again_says_it_was_already_imported_and_adds_nothing(admin_client, people_csv, upload_dir):
    upload(admin_client, people_csv)
    run = ImportRun.objects.get()
    before = database_snapshot()

    response = upload(admin_client, people_csv)
    assert response["Location"] == reverse("admin:import-progress", args=[run.pk])
    page = admin_client.get(response["Location"])
    assert f"This file was already imported as run #{run.pk} (people.csv); nothing added." in page.content.decode()
    assert database_snapshot() == before
    assert stored_uploads(upload_dir) == []


def test_an_interrupted_import_resumes_when_the_same_file_is_uploaded_again(admin_client, tmp_path):
    path = write_csv(tmp_path / "resume.csv", [record(cookie=f"c{i}") for i in range(10)])

    def stop_after_one_batch(done, total):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        csv_import(path=path, batch_size=4, progress=stop_after_one_batch)
    run = ImportRun.objects.get()
    assert progress(admin_client, run.pk)["summary"].startswith("Interrupted after line 5; upload the same file")

    upload(admin_client, path)
    run.refresh_from_db()
    assert (run.status, run.rows, RawRecord.objects.count()) == ("completed", 10, 10)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "bad.csv: the file is empty."),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00", "bad.csv: line 1 is not valid UTF-8"),
        (b"cookie,created_at\nJos\xe9,1/1/2025 0:00\n", "bad.csv: line 2 is not valid UTF-8"),
        (b"\n\n", "bad.csv: the first line is not a CSV header."),
        (b"hello world\nthis is not a CSV file\n", "bad.csv: the header has no cookie or email nor created_at column"),
    ],
    ids=["empty", "binary", "latin-1", "blank", "not-csv"],
)
def test_a_file_that_cannot_be_imported_is_refused_with_the_importers_message_and_nothing_stored(
    admin_client, upload_dir, content, message
):
    response = upload(admin_client, SimpleUploadedFile("bad.csv", content))
    assert response.status_code == 400
    assert f"Import failed: {message}" in response.content.decode()
    assert not ImportRun.objects.exists() and not RawRecord.objects.exists()
    assert stored_uploads(upload_dir) == []


def test_a_form_without_a_file_names_the_field(admin_client):
    response = admin_client.post(reverse(UPLOAD), {})
    assert response.status_code == 400
    assert "This field is required." in response.content.decode()


def test_an_upload_while_another_import_runs_is_refused_with_a_clear_message(admin_client, people_csv, upload_dir):
    with writer_lock_held_elsewhere():
        response = upload(admin_client, people_csv)
    assert response.status_code == 409
    assert "Another import or rebuild is running; import refused." in response.content.decode()
    assert not ImportRun.objects.exists() and stored_uploads(upload_dir) == []


def test_an_upload_without_the_csrf_token_is_refused_and_not_kept(admin_user, people_csv, upload_dir):
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    assert upload(client, people_csv).status_code == 403
    assert not ImportRun.objects.exists() and stored_uploads(upload_dir) == []


@pytest.fixture
def run_urls():
    run = ImportRun.objects.create(file_name="f.csv", sha256="0" * 64, status=ImportRun.Status.COMPLETED)
    return [
        reverse(UPLOAD),
        *(
            reverse(f"admin:{name}", args=[run.pk])
            for name in ("import-progress", "import-progress-json", "import-rejects")
        ),
    ]


def test_anonymous_visitors_are_sent_to_the_login_page(client, run_urls):
    for url in run_urls:
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith(reverse("admin:login")), url


def test_staff_without_the_import_permissions_are_refused(client, django_user_model, run_urls, people_csv, upload_dir):
    client.force_login(django_user_model.objects.create_user("clerk", is_staff=True))
    for url in run_urls:
        assert client.get(url).status_code == 403, url
    assert upload(client, people_csv).status_code == 403
    assert not Profile.objects.exists() and stored_uploads(upload_dir) == []


def test_staff_who_may_add_import_runs_can_upload_and_watch(client, django_user_model, people_csv):
    user = django_user_model.objects.create_user("importer", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="add_importrun"))
    client.force_login(user)
    response = upload(client, people_csv)
    assert client.get(response["Location"]).status_code == 200
    assert ImportRun.objects.get().status == ImportRun.Status.COMPLETED


def test_staff_who_may_view_import_runs_can_watch_but_not_upload(client, django_user_model, run_urls):
    user = django_user_model.objects.create_user("viewer", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_importrun"))
    client.force_login(user)
    assert client.get(run_urls[0]).status_code == 403
    for url in run_urls[1:]:
        assert client.get(url).status_code == 200, url


def test_the_import_runs_admin_links_to_the_upload_page_and_each_runs_pages(admin_client, people_csv):
    add = admin_client.get(reverse("admin:users_app_importrun_add"))
    assert add.status_code == 302 and add["Location"] == reverse(UPLOAD)
    upload(admin_client, people_csv)
    run = ImportRun.objects.get()
    page = admin_client.get(reverse("admin:users_app_importrun_change", args=[run.pk])).content.decode()
    assert reverse("admin:import-progress", args=[run.pk]) in page
    assert reverse("admin:import-rejects", args=[run.pk]) in page
