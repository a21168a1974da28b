"""Reads that several callers need (commands, API, admin)."""

from django.db.models import Count

from .models import Identifier, ImportRun, Profile, ProfileMerge, RawRecord


def database_summary() -> dict:
    """Counts of the raw log, profiles, identifiers and the multi-device cohort."""
    identifiers = dict(Identifier.objects.values_list("kind").annotate(n=Count("id")).order_by())
    histogram = (
        Profile.objects.multi_device().values_list("cookie_count").annotate(n=Count("id")).order_by("cookie_count")
    )
    return {
        "raw_records": RawRecord.objects.count(),
        "unlinked_raw_records": RawRecord.objects.filter(profile__isnull=True).count(),
        "profiles": Profile.objects.count(),
        "multi_cookie_profiles": Profile.objects.multi_device().count(),
        "profiles_by_cookie_count": {str(cookies): n for cookies, n in histogram},
        "identifiers": {kind: identifiers.get(kind, 0) for kind in ("cookie", "email", "phone")},
        "merges": ProfileMerge.objects.count(),
        "import_runs": ImportRun.objects.count(),
    }
