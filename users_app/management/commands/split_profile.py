"""Split an identifier off a profile that glues several people, or re-link what a split detached.

    python manage.py split_profile PROFILE_ID --email X | --cookie X | --phone X [--reason TEXT] [--json]
    python manage.py split_profile --relink DECISION_ID [--json]

A split detaches one identifier (a shared ``info@`` mailbox, a shop's tablet cookie) from the
profile's other identifiers: the profile's raw records are resolved again without that link, and
those that no longer connect form their own profiles. The decision is kept, so later records and
``rebuild_profiles`` keep them apart too. ``--relink`` reverses a decision (a split, a rejected or
an approved held link: the ids are in the admin's "Link decisions") and replays the profiles
without it. Both are ``users_app.governance``'s, as in the admin and the API.

The identifier is normalized as ingestion does (`` Info@Shop.example `` is ``info@shop.example``).
An unknown profile or decision, an identifier the profile does not hold, a decision already
reversed, or an import or rebuild running (decisions are refused meanwhile) is an error (exit code
1) and nothing changes. Each decision is recorded in the audit log.
"""

import json

from django.core.management.base import BaseCommand, CommandError

from users_app.audit import command_actor
from users_app.governance import DecisionError, DecisionResult, decision_reverse, profile_split
from users_app.locks import WriterBusy
from users_app.models import Identifier, LinkDecision, Profile
from users_app.normalize import IDENTIFIER_NORMALIZERS, FieldWarning

REASON_MAX_LENGTH = LinkDecision._meta.get_field("reason").max_length
IDENTIFIERS_SHOWN = 6  # per resulting profile; a glued profile can hold hundreds of cookies

ERROR_SPLIT_OR_RELINK = "Give PROFILE_ID with --email, --cookie or --phone to split, or --relink DECISION_ID."
ERROR_RELINK_ALONE = "--relink takes no PROFILE_ID, identifier or --reason: it reverses the decision as it was taken."
ERROR_NO_IDENTIFIER = "Give the identifier to split off profile {profile_id}: --email, --cookie or --phone."
ERROR_NO_PROFILE = (
    "PROFILE_ID {profile_id}: no such profile (erased, or merged into another since). Find the person again."
)
ERROR_NO_DECISION = "--relink {decision_id}: no such link decision."
ERROR_EMPTY = "--{kind}: give a non-empty {kind}."
ERROR_INVALID = "--{kind}: {problem}."
ERROR_REASON_LENGTH = f"--reason: at most {REASON_MAX_LENGTH} characters."


class Command(BaseCommand):
    help = "Split an identifier off a profile (--email/--cookie/--phone), or re-link a decision (--relink)."

    def add_arguments(self, parser):
        parser.add_argument("profile_id", nargs="?", type=int, metavar="PROFILE_ID", help="the profile to split")
        which = parser.add_mutually_exclusive_group()
        which.add_argument("--email", help="the email to split off (case and surrounding spaces ignored)")
        which.add_argument("--cookie", help="the cookie to split off (exact, surrounding spaces ignored)")
        which.add_argument("--phone", help="the phone number to split off (where phone numbers link people)")
        which.add_argument(
            "--relink", type=int, metavar="DECISION_ID", help="reverse this link decision instead (re-link / undo)"
        )
        parser.add_argument("--reason", default="", help="why, kept with the decision")
        parser.add_argument("--json", action="store_true", help="end with the result as one JSON line")

    def handle(self, *args, **options):
        given = [(kind, options[kind]) for kind in IDENTIFIER_NORMALIZERS if options[kind] is not None]
        if options["relink"] is not None:
            if options["profile_id"] is not None or options["reason"]:
                raise CommandError(ERROR_RELINK_ALONE)
            result = self.relink(options["relink"])
        elif options["profile_id"] is None:
            raise CommandError(ERROR_SPLIT_OR_RELINK)
        elif not given:
            raise CommandError(ERROR_NO_IDENTIFIER.format(profile_id=options["profile_id"]))
        else:
            [(kind, value)] = given
            result = self.split(options["profile_id"], kind, value, options["reason"])
        if options["json"]:
            self.stdout.write(json.dumps(result.as_dict()))

    def split(self, profile_id: int, kind: str, given: str, reason: str) -> DecisionResult:
        try:
            value = IDENTIFIER_NORMALIZERS[kind](given)
        except FieldWarning as exc:
            # The normalizer says "email: 'x' is not a valid address"; the option names the field here.
            raise CommandError(ERROR_INVALID.format(kind=kind, problem=str(exc).split(": ", 1)[-1])) from None
        if not value:
            raise CommandError(ERROR_EMPTY.format(kind=kind))
        if len(reason) > REASON_MAX_LENGTH:
            raise CommandError(ERROR_REASON_LENGTH)
        profile = Profile.objects.filter(pk=profile_id).first()
        if profile is None:
            raise CommandError(ERROR_NO_PROFILE.format(profile_id=profile_id))
        try:
            result = profile_split(profile=profile, kind=kind, value=value, actor=command_actor(), reason=reason)
        except DecisionError as exc:
            raise CommandError(f"--{kind}: {exc}") from None
        except WriterBusy as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(
            self.style.SUCCESS(
                f"Split {kind} {value} off profile {profile_id} (decision {result.decision.pk}): {self.outcome(result)}"
            )
        )
        return result

    def relink(self, decision_id: int) -> DecisionResult:
        decision = LinkDecision.objects.filter(pk=decision_id).select_related("raw_record").first()
        if decision is None:
            raise CommandError(ERROR_NO_DECISION.format(decision_id=decision_id))
        try:
            result = decision_reverse(decision=decision, actor=command_actor())
        except DecisionError as exc:
            raise CommandError(f"--relink {decision_id}: {exc}") from None
        except WriterBusy as exc:
            raise CommandError(str(exc)) from None
        verb = "Re-linked" if decision.kind == LinkDecision.Kind.DETACH else "Took back the approval of"
        self.stdout.write(
            self.style.SUCCESS(
                f"{verb} {decision.identifier_kind} {decision.identifier_value} (decision {decision.pk} reversed): "
                f"{self.outcome(result)}"
            )
        )
        return result

    def outcome(self, result: DecisionResult) -> str:
        """The profiles the decision's records belong to now, with their identifiers, and the replay's counts."""
        identifiers: dict[int, list[str]] = {pid: [] for pid in result.profiles}
        rows = Identifier.objects.filter(profile_id__in=result.profiles).order_by("profile_id", "kind", "value")
        for pid, kind, value in rows.values_list("profile_id", "kind", "value"):
            identifiers[pid].append(f"{kind} {value}")
        described = []
        for pid, held in identifiers.items():
            more = len(held) - IDENTIFIERS_SHOWN
            shown = ", ".join(held[:IDENTIFIERS_SHOWN]) + (f" and {more} more" if more > 0 else "")
            described.append(f"profile {pid} ({shown})")
        count = len(result.profiles)
        return (
            f"its records now make {count} profile{'s' if count != 1 else ''}: {'; '.join(described)}. "
            f"Replayed {result.records} raw records; {result.merges} merges; "
            f"{result.held} links held for review."
        )
