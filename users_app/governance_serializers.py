"""Shapes of the identity-governance API: the review queue, link decisions, a profile's explanation, a split.

``users_app.governance`` speaks of identifiers as ``(kind, value)`` pairs; here each is
``{"kind", "value"}``, the value masked by its kind for keys created with ``--mask-pii`` (emails and
phone numbers; cookies are not personal data here, as everywhere in the API). Free text a person wrote
(a decision's reason) or that names someone (an actor's user name) is masked as text.
"""

from __future__ import annotations

from collections.abc import Mapping

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from .governance import REASON_LENGTH
from .masking import mask_identifier, mask_text
from .models import HeldLink, IdentifierKind, LinkDecision, RawRecord
from .normalize import IDENTIFIER_NORMALIZERS, FieldWarning
from .serializers import MaskingSerializer, StrictSerializer, validate_storable

IDENTIFIER_LENGTH = 255  # Identifier.value's max_length
ERROR_EMPTY = "Give a non-empty {kind}."
EXPLAIN_LIMIT = 500  # records explained at most; a glued profile can hold thousands


class IdentitySerializer(MaskingSerializer):
    """An identifier: its kind and value (emails and phone numbers masked for masking keys)."""

    kind = serializers.ChoiceField(choices=IdentifierKind.choices)
    value = serializers.CharField()

    def to_representation(self, instance):
        # ``governance`` gives ``(kind, value)`` pairs (anchors: lists); a mapping is used as it is.
        if not isinstance(instance, Mapping):
            kind, value = instance
            instance = {"kind": kind, "value": value}
        return super().to_representation(instance)

    def mask_output(self, data: dict) -> dict:
        data["value"] = mask_identifier(data["kind"], data["value"])
        return data


class HeldRecordSerializer(serializers.ModelSerializer):
    class Meta:
        model = RawRecord
        fields = ["id", "created_at", "source"]


class PendingLinkSerializer(MaskingSerializer, serializers.ModelSerializer):
    """A link a guard held for review: the record that would have made it, through which identifier,
    and the two profiles it would join."""

    raw_record = HeldRecordSerializer(read_only=True)
    record_profile_id = serializers.IntegerField(
        source="raw_record.profile_id", allow_null=True, help_text="The profile the held record belongs to."
    )
    target_profile_id = serializers.SerializerMethodField(
        help_text="The profile the link would join: the identifier's owner now."
    )
    identifier = serializers.SerializerMethodField()

    class Meta:
        model = HeldLink
        fields = [
            "id",
            "raw_record",
            "record_profile_id",
            "target_profile_id",
            "identifier",
            "reason",
            "detail",
            "held_at",
        ]

    def get_target_profile_id(self, held: HeldLink) -> int | None:
        # Annotated by the view for a whole page in one query (``PendingLinkViewSet.get_queryset``).
        return held.target_profile_id

    @extend_schema_field(IdentitySerializer)
    def get_identifier(self, held: HeldLink) -> dict:
        return IdentitySerializer((held.kind, held.value), context=self.context).data

    def mask_output(self, data: dict) -> dict:
        data["detail"] = mask_text(data["detail"])
        return data


class LinkDecisionSerializer(MaskingSerializer, serializers.ModelSerializer):
    """A person's decision about a link: ``approve`` (a held link made) or ``detach`` (a rejected held
    link or a split: the identifier kept apart from ``anchors``). Reversed ones stay, as history."""

    identifier = serializers.SerializerMethodField()
    anchors = serializers.SerializerMethodField(help_text="The identifiers a detach keeps it apart from.")

    class Meta:
        model = LinkDecision
        fields = [
            "id", "kind", "identifier", "anchors", "raw_record", "profile_id", "reason", "actor", "created_at",
            "reversed_at", "reversed_by",
        ]  # fmt: skip

    @extend_schema_field(IdentitySerializer)
    def get_identifier(self, decision: LinkDecision) -> dict:
        return IdentitySerializer((decision.identifier_kind, decision.identifier_value), context=self.context).data

    @extend_schema_field(IdentitySerializer(many=True))
    def get_anchors(self, decision: LinkDecision) -> list[dict]:
        return IdentitySerializer(decision.anchors, many=True, context=self.context).data

    def mask_output(self, data: dict) -> dict:
        # A reason is free text, and an actor's user name may be an email address.
        for name in ("reason", "actor", "reversed_by"):
            data[name] = mask_text(data[name])
        return data


class MergeStepSerializer(serializers.Serializer):
    absorbed = serializers.IntegerField(help_text="The profile merged away.")
    into = serializers.IntegerField(help_text="The profile it went into.")
    via = IdentitySerializer(help_text="The identifier the record linked them through.")


class HeldStepSerializer(MaskingSerializer):
    """A link the record would have made and did not: held by a guard, or kept apart by a decision."""

    identifier = IdentitySerializer()
    reason = serializers.ChoiceField(choices=HeldLink.Reason.choices)
    detail = serializers.CharField()
    decision = serializers.IntegerField(allow_null=True, help_text="The decision keeping it apart, if one does.")
    held_link = serializers.IntegerField(
        allow_null=True, help_text="The held link to approve or reject; null when a decision keeps it apart."
    )

    def mask_output(self, data: dict) -> dict:
        data["detail"] = mask_text(data["detail"])
        return data


class LinkStepSerializer(serializers.Serializer):
    """What one raw record did to the profile."""

    record = serializers.IntegerField(help_text="The raw record's id.")
    created_at = serializers.DateTimeField()
    received_at = serializers.DateTimeField()
    source = serializers.ChoiceField(choices=RawRecord.Source.choices)
    outcome = serializers.CharField(help_text="What ingesting it did: created, updated or merged.")
    joined_via = IdentitySerializer(many=True, help_text="Identifiers it shared with records before it.")
    added = IdentitySerializer(many=True, help_text="Identifiers it brought to the profile first.")
    merged = MergeStepSerializer(many=True, help_text="Profiles it merged.")
    held = HeldStepSerializer(many=True, help_text="Links it would have made and did not.")


class ExplanationSerializer(serializers.Serializer):
    """Why a profile is one person: its records in arrival order, each with the links it made, and the
    decisions that shaped it."""

    profile = serializers.IntegerField()
    records = serializers.IntegerField(help_text=f"Records explained: the first {EXPLAIN_LIMIT} at most.")
    truncated = serializers.BooleanField(help_text="Whether the profile has more records than were explained.")
    steps = LinkStepSerializer(many=True)
    decisions = LinkDecisionSerializer(many=True)


class DecisionResultSerializer(serializers.Serializer):
    """What a decision (or its reversal) did: ``governance.DecisionResult.as_dict()``."""

    decision = serializers.IntegerField(help_text="The decision's id: /api/v1/link-decisions/{id}/.")
    kind = serializers.ChoiceField(choices=LinkDecision.Kind.choices)
    identifier = IdentitySerializer()
    reversed = serializers.BooleanField(help_text="True after a reversal.")
    profiles = serializers.ListField(
        child=serializers.IntegerField(), help_text="The profiles the decision's records belong to now."
    )
    records_replayed = serializers.IntegerField(help_text="Raw records resolved again.")
    merges = serializers.IntegerField(help_text="Merges the replay made.")
    held = serializers.IntegerField(help_text="Links held for review in the replayed part.")


class TextField(serializers.CharField):
    """Text only: DRF's CharField would take 12 or 1.5 as text."""

    default_error_messages = {"invalid": "Must be text."}

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class ProfileSplitSerializer(StrictSerializer):
    """The identifier to split off a profile; unknown keys are refused, naming them."""

    kind = serializers.ChoiceField(choices=IdentifierKind.choices, help_text="The kind of identifier to split off.")
    value = TextField(
        max_length=IDENTIFIER_LENGTH,
        validators=[validate_storable],
        help_text="The identifier, normalized as ingestion does (emails' case and surrounding spaces ignored).",
    )
    reason = TextField(
        required=False,
        allow_blank=True,
        default="",
        max_length=REASON_LENGTH,
        validators=[validate_storable],
        help_text="Why, kept with the decision.",
    )

    def validate(self, attrs):
        kind = attrs["kind"]
        try:
            value = IDENTIFIER_NORMALIZERS[kind](attrs["value"])
        except FieldWarning as exc:
            # The normalizer says "email: 'x' is not a valid address"; the field is named by the key.
            raise serializers.ValidationError({"value": [str(exc).split(": ", 1)[-1]]}) from None
        if not value:
            raise serializers.ValidationError({"value": [ERROR_EMPTY.format(kind=kind)]})
        return {**attrs, "value": value}
