"""The admin's CSV upload against the bad input corpus: the importer's message on the page, tables untouched."""

from html import escape

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from tests.admin_ui.test_import_upload import reject_report, stored_uploads, upload
from tests.bad_input import GOOD_ROW, HEADER, UNUSABLE_FILES, data_snapshot, seed_existing_data
from users_app.importing import MAX_COLUMNS
from users_app.models import ImportRun

# The import runs in a thread with its own database connection: it must see committed data.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def upload_dir(settings, tmp_path):
    settings.IMPORT_UPLOAD_DIR = tmp_path / "uploads"
    return settings.IMPORT_UPLOAD_DIR


@pytest.mark.parametrize("bad", UNUSABLE_FILES, ids=[bad.id for bad in UNUSABLE_FILES])
def test_an_unusable_upload_is_answered_with_the_importers_message_and_every_table_is_as_it_was(
    admin_client, tmp_path, upload_dir, bad
):
    seed_existing_data(tmp_path)
    before = data_snapshot()

    response = upload(admin_client, SimpleUploadedFile("bad.csv", bad.build(), content_type="text/csv"))

    assert response.status_code == 400
    assert escape(f"Import failed: bad.csv: {bad.message}") in response.content.decode()
    assert data_snapshot() == before
    assert stored_uploads(upload_dir) == []


def test_an_upload_with_some_bad_rows_imports_the_others_and_its_report_names_each_bad_line(admin_client):
    content = HEADER + GOOD_ROW + ",,1/1/2025 0:00,,\n" + "w,w@example.com,1/1/2025 0:00" + ",v" * 2000 + "\n"

    response = upload(admin_client, SimpleUploadedFile("rows.csv", content.encode()))

    run = ImportRun.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("admin:import-progress", args=[run.pk])
    assert (run.status, run.rows, run.accepted, run.rejected) == ("completed", 3, 1, 2)
    rejects = reject_report(admin_client, run.pk)
    assert [(row["line_number"], row["reason"]) for row in rejects] == [
        ("3", "no usable identifier: needs a cookie or a valid email"),
        ("4", f"the row has 2,003 values; at most {MAX_COLUMNS:,} are accepted"),
    ]
