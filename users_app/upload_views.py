"""The admin's CSV import: upload a file, watch its import, download its reject report.

The upload runs the import ``manage.py import_csv`` runs (``importing.csv_import``), in a background
thread (``importing.csv_import_start``). The request returns once the file's run exists, so a file
that cannot be imported, or another import or rebuild holding the writer lock, is answered on the
upload page and nothing is stored; the same file again shows the run that imported it. The progress
page then polls the run's counters, which every committed batch updates.

Permissions (superusers have them all):
- upload: "Can add import run" (``users_app.add_importrun``);
- watch a run and download its rejects: "Can view import run" or "Can add import run". The reject
  report holds the original lines, so personal data.

No dry run here: a dry run's figures exist only in its rolled-back transaction, where the progress
page cannot see them; ``manage.py import_csv --dry-run`` gives them.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from functools import partial
from pathlib import Path

from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.files.uploadedfile import TemporaryUploadedFile, UploadedFile
from django.core.files.uploadhandler import FileUploadHandler, TemporaryFileUploadHandler
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.views.decorators.csrf import csrf_exempt, csrf_protect

from analytics_site.csv_export import csv_download

from .audit import audit_record, request_actor
from .importing import REJECT_REPORT_COLUMNS, ImportFileError, csv_import_start, reject_report_rows
from .locks import WriterBusy
from .models import AuditEvent, ImportRun

UPLOAD_PERMISSION = "users_app.add_importrun"
VIEW_PERMISSIONS = ("users_app.view_importrun", UPLOAD_PERMISSION)
ALREADY_IMPORTED = "This file was already imported as run #{run} ({name}); nothing added."
MAX_FILE_NAME_BYTES = 255  # file systems count bytes; Django only cuts upload names to 255 characters


class _UploadInImportDir(TemporaryUploadedFile):
    """Django's on-disk upload, but in IMPORT_UPLOAD_DIR: the system temp dir is often RAM-backed."""

    def __init__(self, name, content_type, size, charset, content_type_extra=None):
        directory = Path(settings.IMPORT_UPLOAD_DIR)
        directory.mkdir(parents=True, exist_ok=True)
        file = tempfile.NamedTemporaryFile(suffix=".upload", dir=directory)  # noqa: SIM115 - closed with the request
        # Not TemporaryUploadedFile.__init__, which would open its file in the system temp dir.
        UploadedFile.__init__(self, file, name, content_type, size, charset, content_type_extra)


class ImportUploadHandler(TemporaryFileUploadHandler):
    """Streams the upload to disk in chunks, whatever its size: never whole in memory. Django deletes
    the file when the request ends unless the view has moved it away for the import."""

    def new_file(self, *args, **kwargs):
        FileUploadHandler.new_file(self, *args, **kwargs)  # the parent's would open a file too
        self.file = _UploadInImportDir(self.file_name, self.content_type, 0, self.charset, self.content_type_extra)


class ImportUploadForm(forms.Form):
    # An empty file passes here so the importer's own message ("the file is empty") answers it.
    file = forms.FileField(
        label="CSV file", allow_empty_file=True, widget=forms.FileInput(attrs={"accept": ".csv,text/csv"})
    )


def upload_keep(uploaded: TemporaryUploadedFile) -> Path:
    """Move the upload, under its own name, into a folder of its own where the import reads it."""
    folder = Path(tempfile.mkdtemp(dir=settings.IMPORT_UPLOAD_DIR))
    name = uploaded.name.encode()[:MAX_FILE_NAME_BYTES].decode(errors="ignore")
    kept = folder / name
    os.replace(uploaded.temporary_file_path(), kept)
    return kept


def run_progress(run: ImportRun) -> dict:
    """What the progress page shows of a run, for its first rendering and for each poll."""
    finished = run.status != ImportRun.Status.RUNNING
    if run.status == ImportRun.Status.COMPLETED:
        percent = 100
    else:  # lines_done is where the last committed batch ended, so it never runs ahead of the file
        percent = min(100, run.lines_done * 100 // run.total_lines) if run.total_lines else 0
    counts = (
        f"{run.rows} rows: {run.accepted} accepted, {run.rejected} rejected, {run.warnings} with warnings, "
        f"{run.profiles_created} profiles created, {run.merges} merges."
        + (f" {run.suppressed} dropped: identifiers of people erased on request." if run.suppressed else "")
    )
    summaries = {
        ImportRun.Status.RUNNING: "",
        ImportRun.Status.COMPLETED: f"Imported {counts}",
        ImportRun.Status.FAILED: f"Failed after line {run.lines_done}. Stored so far: {counts}",
        ImportRun.Status.INTERRUPTED: (
            f"Interrupted after line {run.lines_done}; upload the same file again to resume. Stored so far: {counts}"
        ),
    }
    return {
        "id": run.pk,
        "file_name": run.file_name,
        "status": run.status,
        "status_display": run.get_status_display(),
        "finished": finished,
        "lines_done": run.lines_done,
        "total_lines": run.total_lines,
        "percent": percent,
        "rows": run.rows,
        "accepted": run.accepted,
        "rejected": run.rejected,
        "suppressed": run.suppressed,
        "warnings": run.warnings,
        "profiles_created": run.profiles_created,
        "merges": run.merges,
        "summary": summaries[run.status],
        "error": run.error,
    }


def _require_any(request: HttpRequest, *permissions: str) -> None:
    if not any(request.user.has_perm(permission) for permission in permissions):
        raise PermissionDenied


def import_upload(request: HttpRequest, *, site) -> HttpResponse:
    _require_any(request, UPLOAD_PERMISSION)  # checked first: a refused upload is never even read
    request.upload_handlers = [ImportUploadHandler(request)]
    return _import_upload_form(request, site=site)


@csrf_protect
def _import_upload_form(request: HttpRequest, *, site) -> HttpResponse:
    form = ImportUploadForm(request.POST, request.FILES) if request.method == "POST" else ImportUploadForm()
    status, error = 200, ""
    if form.is_bound and not form.is_valid():
        status = 400
    elif form.is_bound:
        kept = upload_keep(form.cleaned_data["file"])
        try:
            started = csv_import_start(path=kept, when_done=partial(shutil.rmtree, kept.parent, ignore_errors=True))
        except ImportFileError as exc:
            status, error = 400, str(exc)
        except WriterBusy as exc:
            status, error = 409, str(exc)
        else:
            summary = started.summary
            if summary.already_imported:
                messages.info(request, ALREADY_IMPORTED.format(run=summary.import_run, name=summary.file_name))
            return redirect(reverse("admin:import-progress", args=[summary.import_run], current_app=site.name))
    context = {**site.each_context(request), "title": "Import a CSV file", "form": form, "error": error}
    return TemplateResponse(request, "admin/import_upload.html", context, status=status)


def import_progress(request: HttpRequest, run_id: int, *, site) -> HttpResponse:
    _require_any(request, *VIEW_PERMISSIONS)
    run = get_object_or_404(ImportRun, pk=run_id)
    context = {
        **site.each_context(request),
        "title": f"Import of {run.file_name}",
        "run": run,
        "progress": run_progress(run),
    }
    return TemplateResponse(request, "admin/import_progress.html", context)


def import_progress_json(request: HttpRequest, run_id: int, *, site) -> JsonResponse:
    _require_any(request, *VIEW_PERMISSIONS)
    return JsonResponse(run_progress(get_object_or_404(ImportRun, pk=run_id)))


def import_rejects(request: HttpRequest, run_id: int, *, site) -> HttpResponse:
    _require_any(request, *VIEW_PERMISSIONS)
    run = get_object_or_404(ImportRun, pk=run_id)
    audit_record(
        actor=request_actor(request),
        action=AuditEvent.Action.EXPORT,
        summary=f"Downloaded the reject report (original lines) of import #{run.pk} {run.file_name}",
        details={"import_run_id": run.pk},
    )
    return csv_download(f"import-{run.pk}-rejects.csv", REJECT_REPORT_COLUMNS, reject_report_rows(run.pk))


def admin_urls(site):
    def page(view):
        return site.admin_view(partial(view, site=site))

    return [
        # csrf_exempt only so the upload handler can be set before the body is read (Django's CSRF check
        # reads it); the form view behind it checks the token.
        path("import-upload/", site.admin_view(csrf_exempt(partial(import_upload, site=site))), name="import-upload"),
        path("import-runs/<int:run_id>/progress/", page(import_progress), name="import-progress"),
        path("import-runs/<int:run_id>/progress.json", page(import_progress_json), name="import-progress-json"),
        path("import-runs/<int:run_id>/rejects.csv", page(import_rejects), name="import-rejects"),
    ]
