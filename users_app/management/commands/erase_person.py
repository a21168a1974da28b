"""Erase a person on request (the right to be forgotten), found by one of their identifiers.

    python manage.py erase_person --email X | --cookie X [--for-real] [--json]

Without ``--for-real`` it is a dry run: it says what would go and changes nothing. With it, the
profile, its identifiers, raw records, interests and merge history, the reject report lines
naming it, and the held links and link decisions about it (``users_app.erasure`` says which) are
deleted, and every identifier of the person is suppressed (kept as a salted hash
only), so records later imported or sent with any of them are dropped and counted, not stored.
The identifier is normalized as ingestion does (`` X@Y.com `` finds ``x@y.com``). One that
matches nobody is an error (exit code 1). The erasure is recorded in the audit log.
"""

import json
from dataclasses import asdict

from django.core.management.base import BaseCommand, CommandError

from users_app.audit import command_actor
from users_app.erasure import ErasureError, ErasureResult, person_erase, profile_find
from users_app.models import IdentifierKind


def rows_text(result: ErasureResult) -> str:
    removed = result.removed
    return (
        f"{removed.profiles} profile, {removed.identifiers} identifiers, {removed.raw_records} raw records, "
        f"{removed.profile_interests} interests, {removed.merge_ledger} merge ledger rows, "
        f"{removed.import_rejects} reject report lines, {removed.held_links} held links, "
        f"{removed.link_decisions} link decisions ({result.rows_removed} rows)"
    )


def redacted_text(result: ErasureResult) -> str:
    """The link decisions that keep other people apart and stay, without the person's identifiers."""
    count = result.link_decisions_redacted
    if not count:
        return ""
    noun = "link decision keeping" if count == 1 else "link decisions keeping"
    verb = "would stay" if result.dry_run else "stays" if count == 1 else "stay"
    return f" {count} {noun} other people apart {verb}, without the person's identifiers."


class Command(BaseCommand):
    help = "Erase a person found by email or cookie (a dry run unless --for-real)."

    def add_arguments(self, parser):
        who = parser.add_mutually_exclusive_group(required=True)
        who.add_argument("--email", help="an email of the person (case and surrounding spaces ignored)")
        who.add_argument("--cookie", help="a cookie of the person (exact, surrounding spaces ignored)")
        parser.add_argument("--for-real", action="store_true", help="erase; without it, only say what would go")
        parser.add_argument("--json", action="store_true", help="end with the counts as one JSON line")

    def handle(self, *args, **options):
        kind, value = (
            (IdentifierKind.EMAIL, options["email"])
            if options["email"] is not None
            else (IdentifierKind.COOKIE, options["cookie"])
        )
        dry_run = not options["for_real"]
        try:
            profile = profile_find(kind=kind, value=value)
            result = person_erase(profile=profile, dry_run=dry_run, actor=command_actor())
        except ErasureError as exc:
            raise CommandError(str(exc)) from None

        cohort = " They are in the multi-device cohort." if result.in_multi_device_cohort else ""
        if dry_run:
            self.stdout.write(
                f"Dry run: erasing profile {result.profile_id} would remove {rows_text(result)} and suppress "
                f"{result.suppressions_recorded} identifiers.{cohort}{redacted_text(result)} Nothing was changed; "
                "run again with --for-real to erase."
            )
        else:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Erased profile {result.profile_id}: removed {rows_text(result)}; suppressed "
                    f"{result.suppressions_recorded} identifiers, so records holding them will be dropped."
                    + cohort.replace(" are ", " were ")
                    + redacted_text(result)
                )
            )
        if options["json"]:
            summary = {**asdict(result), "rows_removed": result.rows_removed}
            self.stdout.write(json.dumps(summary))
