"""The seed's real sample file gives the contract's reference figures, on SQLite and PostgreSQL."""

import json
from io import StringIO

import pytest
from django.core.management import call_command

from tests.builders import SAMPLE_FILE, database_snapshot

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(
        not SAMPLE_FILE.is_file(),
        reason=f"the seed's sample file is not at {SAMPLE_FILE} (../shared is absent outside CI)",
    ),
]


def command_json(*args) -> dict:
    out = StringIO()
    call_command(*args, "--json", stdout=out)
    return json.loads(out.getvalue().strip().splitlines()[-1])


def test_sample_file_gives_the_reference_figures_and_is_stable_under_reimport_and_rebuild():
    imported = command_json("import_csv", str(SAMPLE_FILE))
    assert (imported["rows"], imported["accepted"], imported["rejected"]) == (10_002, 10_002, 0)
    assert imported["profiles_created"] == 9_492

    summary = command_json("summary")
    assert summary["raw_records"] == 10_002
    assert summary["profiles"] == 9_492
    assert summary["multi_cookie_profiles"] == 483
    assert summary["profiles_by_cookie_count"] == {"2": 458, "3": 24, "4": 1}
    assert summary["identifiers"]["cookie"] == 10_001
    assert summary["identifiers"]["email"] == 9_492

    after_import = database_snapshot()
    again = command_json("import_csv", str(SAMPLE_FILE))
    assert again["already_imported"] is True and again["accepted"] == 0
    assert database_snapshot() == after_import

    rebuilt = command_json("rebuild_profiles")
    assert (rebuilt["raw_records"], rebuilt["profiles"], rebuilt["multi_cookie_profiles"]) == (10_002, 9_492, 483)
    assert database_snapshot() == after_import
