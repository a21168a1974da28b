"""Shapes of the API: the seed's ingest payload and profile document, and the v1 resources.

Serializers validate types and sizes and shape output; the contract's rules (what is a usable
identifier, which date formats) stay in ``normalize`` and are applied by ``records_ingest``.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from .models import Identifier, IdentifierKind, ImportReject, ImportRun, Profile, ProfileMerge, RawRecord
from .normalize import MAX_INTEREST_LENGTH, MAX_TEXT_LENGTH

MAX_INTERESTS = 100
MAX_EXTRA_FIELDS = 50
MAX_BATCH = 1000
INGEST_STATUSES = ["created", "updated", "merged", "rejected"]


BAD_TEXT = "Text must be valid Unicode without NUL characters."


def storable_text(text: str) -> bool:
    """PostgreSQL stores neither NUL characters nor lone surrogates (which JSON's \\u escapes allow)."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def first_unstorable_path(value: object, path: str) -> str | None:
    """The dotted path of the first key or text in a JSON value that cannot be stored, if any."""
    if isinstance(value, str):
        return None if storable_text(value) else path
    if isinstance(value, dict):
        for key, item in value.items():
            if not storable_text(key):
                return path
            if found := first_unstorable_path(item, f"{path}.{key}"):
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            if found := first_unstorable_path(item, f"{path}[{index}]"):
                return found
    return None


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
        if isinstance(data, dict) and (path := first_unstorable_path(data, "data")):
            raise serializers.ValidationError({path.split(".", 1)[-1]: [BAD_TEXT]})
        value = super().to_internal_value(data)
        extra = set(data) - set(self.fields)
        if len(extra) > MAX_EXTRA_FIELDS:
            raise serializers.ValidationError(f"At most {MAX_EXTRA_FIELDS} extra fields.")
        for key in extra:
            if len(key) > MAX_TEXT_LENGTH:
                raise serializers.ValidationError(f"A field name is longer than {MAX_TEXT_LENGTH} characters.")
        return value


class IngestSerializer(StrictSerializer):
    data = RecordDataSerializer()
    message_id = serializers.CharField(
        max_length=200,
        required=False,
        validators=[validate_storable],
        help_text="Makes retries safe: one record per id, the same answer each time.",
    )


class IngestBatchSerializer(StrictSerializer):
    batch = serializers.ListField(
        child=serializers.JSONField(), min_length=1, max_length=MAX_BATCH, help_text="Items shaped like /api/ingest."
    )


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


class SeedProfileDataSerializer(serializers.Serializer):
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


class SeedProfileSerializer(serializers.Serializer):
    """A profile in the seed's document shape, ``{"data": {...}}``, plus all cookies and emails."""

    data = SeedProfileDataSerializer(source="*")


class IdentifierSerializer(serializers.ModelSerializer):
    class Meta:
        model = Identifier
        fields = ["kind", "value", "first_record"]


class ProfileSerializer(serializers.HyperlinkedModelSerializer):
    interests = serializers.SlugRelatedField(many=True, read_only=True, slug_field="name")

    class Meta:
        model = Profile
        fields = [
            "id", "url", "cookie", "email", "phone_number", "country", "state", "city", "age", "gender",
            "income", "income_min", "income_max", "education", "interests", "cookie_count",
            "first_seen", "last_seen",
        ]  # fmt: skip


class RawRecordSerializer(serializers.ModelSerializer):
    class Meta:
        model = RawRecord
        fields = [
            "id", "source", "import_run", "line_number", "source_key", "received_at", "created_at",
            "data", "warnings", "outcome", "profile",
        ]  # fmt: skip


class ProfileMergeSerializer(serializers.ModelSerializer):
    class Meta:
        model = ProfileMerge
        fields = ["survivor_id", "absorbed_id", "identifier_kind", "identifier_value", "raw_record", "merged_at"]


class ProfileDetailSerializer(ProfileSerializer):
    identifiers = IdentifierSerializer(many=True, read_only=True)
    raw_records = RawRecordSerializer(many=True, read_only=True)
    merges = serializers.SerializerMethodField()
    trait_sources = serializers.JSONField(read_only=True)

    class Meta(ProfileSerializer.Meta):
        fields = [*ProfileSerializer.Meta.fields, "identifiers", "raw_records", "merges", "trait_sources"]

    def get_merges(self, profile: Profile) -> list[dict]:
        merges = ProfileMerge.objects.filter(survivor_id=profile.id)
        return ProfileMergeSerializer(merges, many=True).data


class ImportRejectSerializer(serializers.ModelSerializer):
    class Meta:
        model = ImportReject
        fields = ["line_number", "reason", "original"]


class ImportRunSerializer(serializers.HyperlinkedModelSerializer):
    class Meta:
        model = ImportRun
        fields = [
            "id", "url", "file_name", "sha256", "size_bytes", "status", "started_at", "finished_at",
            "rows", "accepted", "rejected", "warnings", "profiles_created", "merges", "error",
        ]  # fmt: skip


class ImportRunDetailSerializer(ImportRunSerializer):
    rejects = ImportRejectSerializer(many=True, read_only=True)

    class Meta(ImportRunSerializer.Meta):
        fields = [*ImportRunSerializer.Meta.fields, "rejects"]
