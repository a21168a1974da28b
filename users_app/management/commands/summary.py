"""Print what the database holds: raw records, profiles, the multi-device cohort, identifiers.

python manage.py summary [--json]
"""

import json

from django.core.management.base import BaseCommand

from users_app.selectors import database_summary


class Command(BaseCommand):
    help = "Counts of raw records, profiles, multi-device profiles and identifiers."

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args, **options):
        summary = database_summary()
        if options["json"]:
            self.stdout.write(json.dumps(summary))
            return
        for key, value in summary.items():
            self.stdout.write(f"{key.replace('_', ' ')}: {value}")
