"""Create (or reset) the demo's admin login and print it: ``python manage.py create_demo_login``.

For local demos only: it refuses to run unless DJANGO_DEBUG is on.
"""

import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Create or reset the demo admin user with a fresh random password, and print it."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")

    def handle(self, *args, **options):
        if not settings.DEBUG:
            raise CommandError("create_demo_login is for local demos; set DJANGO_DEBUG=1.")
        password = secrets.token_urlsafe(12)
        user, _ = get_user_model().objects.get_or_create(username=options["username"])
        user.is_staff = user.is_superuser = True
        user.set_password(password)
        user.save()
        self.stdout.write(
            self.style.SUCCESS(
                f"Log in at http://127.0.0.1:8000/admin/ as user '{user.username}' with password '{password}'"
            )
        )
