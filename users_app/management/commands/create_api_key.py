"""Create an API key and print it once: ``python manage.py create_api_key NAME --scope ingest|read``.

The key is the last word of the output; only its hash is stored, so it cannot be shown again.
"""

from django.core.management.base import BaseCommand

from users_app.access import api_key_create
from users_app.models import ApiKey


class Command(BaseCommand):
    help = "Create an API key (ingest: post records; read: read personal data) and print it once."

    def add_arguments(self, parser):
        parser.add_argument("name", help="who or what uses the key, e.g. 'website tag'")
        parser.add_argument("--scope", required=True, choices=ApiKey.Scope.values)

    def handle(self, *args, **options):
        key, secret = api_key_create(name=options["name"], scope=options["scope"])
        self.stdout.write(f"Created {key.scope} key '{key.name}'. Store it now; it is not shown again:")
        self.stdout.write(secret)
