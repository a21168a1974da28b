"""Create an API key and print it once: ``python manage.py create_api_key NAME --scope SCOPE [--mask-pii]``.

SCOPE is one of ``ingest`` (post records), ``read`` (read personal data), ``erase`` (erase people on
request) or ``govern`` (review held links, split and re-link profiles; it also reads the review queue
and the link decisions). The key is the last word of the output; only its hash is stored, so it cannot
be shown again.
``--mask-pii`` (read keys only) makes every answer to the key mask emails and phone numbers.
The creation is recorded in the audit log, with the operating-system user as the actor.
"""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from users_app.access import api_key_create
from users_app.audit import command_actor
from users_app.models import ApiKey

MASK_NEEDS_READ = (
    "--mask-pii is for read keys: the other keys read no personal data, or (govern keys) decide on the "
    "identifiers themselves."
)


class Command(BaseCommand):
    help = (
        "Create an API key (ingest: post records; read: read personal data; erase: erase people; "
        "govern: review held links, split and re-link profiles) and print it once."
    )

    def add_arguments(self, parser):
        parser.add_argument("name", help="who or what uses the key, e.g. 'website tag'")
        parser.add_argument("--scope", required=True, choices=ApiKey.Scope.values, help="what the key may do")
        parser.add_argument("--mask-pii", action="store_true", help="read keys: answers mask emails and phone numbers")

    def handle(self, *args, **options):
        if options["mask_pii"] and options["scope"] != ApiKey.Scope.READ:
            raise CommandError(MASK_NEEDS_READ)
        try:
            key, secret = api_key_create(
                name=options["name"], scope=options["scope"], mask_pii=options["mask_pii"], actor=command_actor()
            )
        except ValidationError as error:
            problems = (f"{field}: {' '.join(errors)}" for field, errors in error.message_dict.items())
            raise CommandError("; ".join(problems)) from None
        masked = " (personal data masked)" if key.mask_pii else ""
        self.stdout.write(
            self.style.SUCCESS(f"Created {key.scope} key '{key.name}'{masked}. Store it now; it is not shown again:")
        )
        self.stdout.write(secret)
