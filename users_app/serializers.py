"""Shapes of the API: the seed's ingest payload and profile document, and the v1 resources.

Serializers validate types and sizes and shape output; the contract's rules (what is a usable
identifier, which date formats) stay in ``normalize`` and are applied by ``records_ingest``.
"""

from __future__ import annotations

import math

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from .masking import mask_any, mask_email, mask_identifier, mask_phone, mask_record_data, mask_text
from .models import ApiKey, Identifier, IdentifierKind, ImportReject, ImportRun, Profile, ProfileMerge, RawRecord
from .normalize import MAX_INTEREST_LENGTH, MAX_INTERESTS, MAX_TEXT_LENGTH

MAX_EXTRA_FIELDS = 50
MAX_BATCH = 1000
# "suppressed": dropped, not stored, because the record holds an identifier of a person erased on request.
INGEST_STATUSES = ["created", "updated", "merged", "queued", "rejected", "suppressed"]


BAD_TEXT = "Text must be valid Unicode without NUL characters."


def storable_text(text: str) -> bool:
    """PostgreSQL stores neither NUL characters nor lone surrogates (which JSON's \\u escapes allow)."""
    if "\x00" in text:
        return False
    if text.isascii():  # known without reading the text: no surrogates
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


NOT_FINITE = "Numbers must be finite: 1e999 reads as infinity, which JSON cannot store."
# How deep extra fields may nest (``data`` is level 0; ``location`` and ``demographics`` are 1).
MAX_RECORD_DEPTH = 8
TOO_DEEP = f"Nested deeper than {MAX_RECORD_DEPTH} levels."
# A batch item may hold no more than one /api/ingest request can (``api.MAX_INGEST_BYTES``): counted
# in characters of names and values, which never exceed the bytes they take in a request body.
MAX_RECORD_CHARACTERS = 64 * 1024
TOO_BIG = f"The record passes {MAX_RECORD_CHARACTERS:,} characters (names and values together) here."


class _RecordCheck:
    """Walks a record once: text the database cannot store, infinite numbers, depth and size."""

    def __init__(self) -> None:
        self.left = MAX_RECORD_CHARACTERS

    def problem(self, value: object, depth: int = 0) -> tuple[str, str] | None:
        """The first problem as (where, below ``value``: ``.key`` and ``[index]`` steps, and what);
        the steps are spelled out only on the way back from a problem, never for clean values."""
        if isinstance(value, str):
            self.left -= len(value)
            if not storable_text(value):
                return "", BAD_TEXT
        elif isinstance(value, dict | list):
            if depth > MAX_RECORD_DEPTH:
                return "", TOO_DEEP
            self.left -= 1
            is_dict = isinstance(value, dict)
            for key, item in value.items() if is_dict else enumerate(value):
                if is_dict:
                    self.left -= len(key)
                    if not storable_text(key):
                        return "", BAD_TEXT
                if found := self.problem(item, depth + 1):
                    step = f".{key}" if is_dict else f"[{key}]"
                    return step + found[0], found[1]
        elif isinstance(value, float) and not math.isfinite(value):
            return "", NOT_FINITE
        else:  # a number (a 4,000-digit integer counts ~1,000), true, false, null
            self.left -= max(1, value.bit_length() // 4) if isinstance(value, int) else 1
        return ("", TOO_BIG) if self.left < 0 else None


def first_record_problem(data: dict) -> tuple[str, str] | None:
    """The dotted path (``data.location.city``, ``data.notes[3]``) and error of the first value that
    cannot be stored (NUL, lone surrogate, infinity) or makes the record too deep or too big, if any."""
    found = _RecordCheck().problem(data)
    return ("data" + found[0], found[1]) if found else None


def validate_storable(value: str) -> None:
    if not storable_text(value):
        raise serializers.ValidationError(BAD_TEXT)


class StrictSerializer(serializers.Serializer):
    """Refuses keys it does not know, naming them, so a typo (``contry``) is not silently dropped."""

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({key: ["Unknown field."] for key in unknown})
        return super().to_internal_value(data)


class OptionalValueField(serializers.Field):
    """A record field that may be absent or null and is kept as sent (the raw log stores it verbatim)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("required", False)
        kwargs.setdefault("allow_null", True)
        super().__init__(**kwargs)

    def to_representation(self, value):
        return value


@extend_schema_field({"oneOf": [{"type": "string"}, {"type": "number"}], "nullable": True})
class ScalarField(OptionalValueField):
    """Text, a number or null, as a CSV cell would hold; anything else is a type error."""

    default_error_messages = {
        "type": "Must be text, a number or null.",
        "length": f"At most {MAX_TEXT_LENGTH} characters.",
    }

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, (str, int, float)):
            self.fail("type")
        if isinstance(data, str) and len(data) > MAX_TEXT_LENGTH:
            self.fail("length")
        return data


@extend_schema_field({"oneOf": [{"type": "array", "items": {"type": "string"}}, {"type": "string"}], "nullable": True})
class InterestsField(OptionalValueField):
    default_error_messages = {
        "type": "Must be a list of text (or one text with '|' between interests).",
        "count": f"At most {MAX_INTERESTS} interests.",
        "length": f"Each interest has at most {MAX_INTEREST_LENGTH} characters.",
    }

    def to_internal_value(self, data):
        items = data.split("|") if isinstance(data, str) else data
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            self.fail("type")
        if len(items) > MAX_INTERESTS:
            self.fail("count")
        if any(len(i) > MAX_INTEREST_LENGTH for i in items):
            self.fail("length")
        return data


class LocationSerializer(StrictSerializer):
    country = ScalarField()
    state = ScalarField()
    city = ScalarField()


class DemographicsSerializer(StrictSerializer):
    age = ScalarField()
    gender = ScalarField()
    income = ScalarField()
    education = ScalarField()


class RecordDataSerializer(serializers.Serializer):
    """One record, nested as in the seed's README (flat CSV-style fields are accepted too).

    Other keys are kept in the raw record, as extra CSV columns are.
    """

    cookie = ScalarField()
    email = ScalarField()
    phone_number = ScalarField()
    created_at = ScalarField(required=True, allow_null=False)
    location = LocationSerializer(required=False, allow_null=True)
    demographics = DemographicsSerializer(required=False, allow_null=True)
    interests = InterestsField()
    country = ScalarField()
    state = ScalarField()
    city = ScalarField()
    age = ScalarField()
    gender = ScalarField()
    income = ScalarField()
    education = ScalarField()

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        extra = set(data) - set(self.fields)
        if len(extra) > MAX_EXTRA_FIELDS:
            raise serializers.ValidationError(f"At most {MAX_EXTRA_FIELDS} extra fields.")
        for key in extra:
            if len(key) > MAX_TEXT_LENGTH:
                raise serializers.ValidationError(f"A field name is longer than {MAX_TEXT_LENGTH} characters.")
        # After the fields' own checks, whose errors are more precise ("At most 100 interests.").
        if problem := first_record_problem(data):
            path, error = problem
            raise serializers.ValidationError({path.split(".", 1)[-1]: [error]})
        return value


class IngestSerializer(StrictSerializer):
    data = RecordDataSerializer()
    message_id = serializers.CharField(
        max_length=200,
        required=False,
        validators=[validate_storable],
        help_text="Makes retries safe: one record per id, the same answer each time.",
    )


_SCALAR_TYPES = (str, int, float)
_GROUP_FIELDS = {
    "location": frozenset(LocationSerializer().fields),
    "demographics": frozenset(DemographicsSerializer().fields),
}
_RECORD_SCALARS = frozenset(RecordDataSerializer().fields) - _GROUP_FIELDS.keys() - {"interests"}


def _plain_scalar(value: object) -> bool:
    return value is None or (type(value) in _SCALAR_TYPES and not (type(value) is str and len(value) > MAX_TEXT_LENGTH))


def _plain_interests(value: object) -> bool:
    if value is None:
        return True
    items = value.split("|") if type(value) is str else value
    return (
        type(items) is list
        and len(items) <= MAX_INTERESTS
        and all(type(item) is str and len(item) <= MAX_INTEREST_LENGTH for item in items)
    )


def plainly_valid_item(item: object) -> bool:
    """Whether ``IngestSerializer`` surely accepts ``item`` as it is (the same ``data`` and
    ``message_id``), decided without it: the ingest routes ask the serializer only about the other
    items, for its precise errors. DRF's field machinery costs ~90 µs an item, a third of a batch's
    time. False means "ask the serializer", not "invalid" (tests/api/test_plain_items.py checks
    that every item this accepts, the serializer accepts unchanged)."""
    if type(item) is not dict or not item.keys() <= {"data", "message_id"}:
        return False
    message_id = item.get("message_id", "")
    if "message_id" in item and not (
        type(message_id) is str and 0 < len(message_id) <= 200 and message_id == message_id.strip()
    ):
        return False
    data = item.get("data")
    if type(data) is not dict or data.get("created_at") is None:
        return False
    extra = 0
    for key, value in data.items():
        if key in _RECORD_SCALARS:
            plain = _plain_scalar(value)
        elif key in _GROUP_FIELDS:
            plain = value is None or (
                type(value) is dict
                and value.keys() <= _GROUP_FIELDS[key]
                and all(_plain_scalar(field) for field in value.values())
            )
        elif key == "interests":
            plain = _plain_interests(value)
        else:
            extra += 1
            plain = len(key) <= MAX_TEXT_LENGTH
        if not plain:
            return False
    # The record's text (message id included) storable, its numbers finite, its size and depth bounded.
    return extra <= MAX_EXTRA_FIELDS and first_record_problem(data) is None and storable_text(message_id)


class ParsedJSONField(serializers.JSONField):
    """A value of a request body the JSON parser read: JSON by construction, so it is not
    written out again to prove it (DRF's JSONField does: 7% of a batch's time in the server)."""

    def to_internal_value(self, data):
        return data


class IngestBatchSerializer(StrictSerializer):
    batch = serializers.ListField(
        child=ParsedJSONField(), min_length=1, max_length=MAX_BATCH, help_text="Items shaped like /api/ingest."
    )


def masks_personal_data(context: dict) -> bool:
    """Whether the answer goes to a key created with ``--mask-pii`` (staff logins see everything)."""
    key = getattr(context.get("request"), "auth", None)
    return isinstance(key, ApiKey) and key.mask_pii


class MaskingSerializer(serializers.Serializer):
    """Output holding emails or phone numbers: ``mask_output`` masks the shaped answer for masking keys.

    Nested serializers mask their own part (they share the root's context), so each one names only its
    own fields; tests/api/test_masked_keys.py checks every GET route with a masking key.
    """

    def to_representation(self, instance):
        data = super().to_representation(instance)
        return self.mask_output(data) if masks_personal_data(self.context) else data

    def mask_output(self, data: dict) -> dict:
        raise NotImplementedError


class UserLookupQuerySerializer(serializers.Serializer):
    cookie = serializers.CharField(required=False, allow_blank=True, max_length=255, help_text="Exact cookie.")
    email = serializers.CharField(
        required=False, allow_blank=True, max_length=255, help_text="Exact email (case and spaces ignored)."
    )

    def validate(self, attrs):
        attrs = {key: value.strip() for key, value in attrs.items()}
        if not attrs.get("cookie") and not attrs.get("email"):
            raise serializers.ValidationError("Give a cookie or an email: /api/user?cookie=... or ?email=...")
        return attrs


class IngestResultSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=INGEST_STATUSES)
    profile_id = serializers.IntegerField(allow_null=True)
    raw_record_id = serializers.IntegerField(allow_null=True)
    message_id = serializers.CharField(allow_null=True)
    duplicate = serializers.BooleanField()
    warnings = serializers.ListField(child=serializers.CharField())
    errors = serializers.DictField(required=False)


class SeedLocationSerializer(serializers.Serializer):
    state = serializers.CharField()
    country = serializers.CharField()
    city = serializers.CharField()


class SeedDemographicsSerializer(serializers.Serializer):
    age = serializers.IntegerField(allow_null=True)
    gender = serializers.CharField()
    income = serializers.CharField()
    education = serializers.CharField()


class SeedProfileDataSerializer(MaskingSerializer):
    id = serializers.IntegerField()
    cookie = serializers.CharField(help_text="Most recent cookie.")
    email = serializers.CharField(help_text="Most recent email.")
    phone_number = serializers.CharField()
    created_at = serializers.DateTimeField(source="first_seen", help_text="First seen.")
    location = SeedLocationSerializer(source="*")
    demographics = SeedDemographicsSerializer(source="*")
    interests = serializers.SerializerMethodField()
    cookies = serializers.SerializerMethodField()
    emails = serializers.SerializerMethodField()
    first_seen = serializers.DateTimeField()
    last_seen = serializers.DateTimeField()

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_interests(self, profile: Profile) -> list[str]:
        return sorted(interest.name for interest in profile.interests.all())

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_cookies(self, profile: Profile) -> list[str]:
        return sorted(i.value for i in profile.identifiers.all() if i.kind == IdentifierKind.COOKIE)

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_emails(self, profile: Profile) -> list[str]:
        return sorted(i.value for i in profile.identifiers.all() if i.kind == IdentifierKind.EMAIL)

    def mask_output(self, data: dict) -> dict:
        data["email"], data["phone_number"] = mask_email(data["email"]), mask_phone(data["phone_number"])
        data["emails"] = [mask_email(email) for email in data["emails"]]
        return data


class SeedProfileSerializer(serializers.Serializer):
    """A profile in the seed's document shape, ``{"data": {...}}``, plus all cookies and emails."""

    data = SeedProfileDataSerializer(source="*")


class IdentifierSerializer(MaskingSerializer, serializers.ModelSerializer):
    class Meta:
        model = Identifier
        fields = ["kind", "value", "first_record"]

    def mask_output(self, data: dict) -> dict:
        data["value"] = mask_identifier(data["kind"], data["value"])
        return data


class ProfileSerializer(MaskingSerializer, serializers.HyperlinkedModelSerializer):
    interests = serializers.SlugRelatedField(many=True, read_only=True, slug_field="name")

    class Meta:
        model = Profile
        fields = [
            "id", "url", "cookie", "email", "phone_number", "country", "state", "city", "age", "gender",
            "income", "income_min", "income_max", "education", "interests", "cookie_count",
            "first_seen", "last_seen",
        ]  # fmt: skip

    def mask_output(self, data: dict) -> dict:
        data["email"], data["phone_number"] = mask_email(data["email"]), mask_phone(data["phone_number"])
        return data


class RawRecordSerializer(MaskingSerializer, serializers.ModelSerializer):
    class Meta:
        model = RawRecord
        fields = [
            "id", "source", "import_run", "line_number", "source_key", "received_at", "created_at",
            "data", "warnings", "outcome", "profile",
        ]  # fmt: skip

    def mask_output(self, data: dict) -> dict:
        if (data["source_key"] or "").startswith("api:"):
            # A message id is the client's own text and could be anything, an email included.
            data["source_key"] = mask_text(data["source_key"])
        data["data"], data["warnings"] = mask_record_data(data["data"]), mask_any(data["warnings"])
        return data


class ProfileMergeSerializer(MaskingSerializer, serializers.ModelSerializer):
    class Meta:
        model = ProfileMerge
        fields = ["survivor_id", "absorbed_id", "identifier_kind", "identifier_value", "raw_record", "merged_at"]

    def mask_output(self, data: dict) -> dict:
        data["identifier_value"] = mask_identifier(data["identifier_kind"], data["identifier_value"])
        return data


class ProfileDetailSerializer(ProfileSerializer):
    identifiers = IdentifierSerializer(many=True, read_only=True)
    raw_records = RawRecordSerializer(many=True, read_only=True)
    merges = serializers.SerializerMethodField()
    trait_sources = serializers.JSONField(read_only=True)

    class Meta(ProfileSerializer.Meta):
        fields = [*ProfileSerializer.Meta.fields, "identifiers", "raw_records", "merges", "trait_sources"]

    def get_merges(self, profile: Profile) -> list[dict]:
        merges = ProfileMerge.objects.filter(survivor_id=profile.id)
        return ProfileMergeSerializer(merges, many=True, context=self.context).data


class ImportRejectSerializer(MaskingSerializer, serializers.ModelSerializer):
    class Meta:
        model = ImportReject
        fields = ["line_number", "reason", "original"]

    def mask_output(self, data: dict) -> dict:
        data["reason"], data["original"] = mask_text(data["reason"]), mask_text(data["original"])
        return data


class ImportRunSerializer(MaskingSerializer, serializers.HyperlinkedModelSerializer):
    class Meta:
        model = ImportRun
        fields = [
            "id", "url", "file_name", "sha256", "size_bytes", "status", "started_at", "finished_at",
            "rows", "accepted", "rejected", "suppressed", "warnings", "profiles_created", "merges", "error",
        ]  # fmt: skip

    def mask_output(self, data: dict) -> dict:
        data["error"] = mask_text(data["error"])  # an import error may quote the line it stopped at
        return data


class ImportRunDetailSerializer(ImportRunSerializer):
    rejects = ImportRejectSerializer(many=True, read_only=True)

    class Meta(ImportRunSerializer.Meta):
        fields = [*ImportRunSerializer.Meta.fields, "rejects"]


class ErasedRowsSerializer(serializers.Serializer):
    profiles = serializers.IntegerField()
    identifiers = serializers.IntegerField()
    raw_records = serializers.IntegerField()
    profile_interests = serializers.IntegerField()
    merge_ledger = serializers.IntegerField(help_text="Merge history rows between this person's own profiles.")
    import_rejects = serializers.IntegerField(help_text="Reject report lines holding one of their identifiers.")
    held_links = serializers.IntegerField(help_text="Links held or kept apart that named them or their records.")
    link_decisions = serializers.IntegerField(help_text="Link decisions about their identifiers or records.")


class ErasureResultSerializer(serializers.Serializer):
    """What an erasure removed (or, for a dry run, would remove), table by table."""

    profile_id = serializers.IntegerField()
    dry_run = serializers.BooleanField()
    removed = ErasedRowsSerializer(help_text="Rows removed, by table.")
    rows_removed = serializers.IntegerField(help_text="All rows removed.")
    link_decisions_redacted = serializers.IntegerField(
        help_text="Link decisions keeping other people apart that stay, with this person's identifiers taken out."
    )
    suppressions_recorded = serializers.IntegerField(
        help_text="Identifiers added to the suppression list (as salted hashes): records with them are dropped."
    )
    in_multi_device_cohort = serializers.BooleanField(
        help_text="Whether the person was in the multi-device cohort. Cohort and segment membership is computed "
        "from profiles, so it went with the profile."
    )
