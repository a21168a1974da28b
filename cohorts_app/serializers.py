from django.core.exceptions import ValidationError as DjangoValidationError
from django.shortcuts import get_object_or_404
from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from .models import Segment
from .segments import segment_filters_clean, segment_profiles

FILTER_VALUE = serializers.JSONField(help_text="Text, a number, or for the interest filters a list of text.")


class SegmentSerializer(serializers.ModelSerializer):
    filters = serializers.DictField(
        child=FILTER_VALUE,
        required=False,
        help_text=(
            'Profile filters, named as /api/v1/profiles/ takes them: {"country": "India", "interests": ["sports"]}.'
        ),
    )
    members_url = serializers.SerializerMethodField()

    class Meta:
        model = Segment
        fields = ("id", "name", "description", "filters", "members_url", "created_at", "updated_at")
        read_only_fields = ("created_at", "updated_at")

    @extend_schema_field(serializers.CharField())
    def get_members_url(self, segment) -> str:
        return reverse("segment-members", args=[segment.pk])

    def validate_filters(self, filters: dict) -> dict:
        for name, value in filters.items():
            items = value if isinstance(value, list) else [value]
            if not all(isinstance(item, str | int | float) and not isinstance(item, bool) for item in items):
                raise serializers.ValidationError({name: ["Give text, a number, or a list of text."]})
        try:
            return segment_filters_clean(filters)
        except DjangoValidationError as error:
            raise serializers.ValidationError(error.message_dict) from None


class SegmentDetailSerializer(SegmentSerializer):
    member_count = serializers.SerializerMethodField(help_text="Profiles matching the filters now.")

    class Meta(SegmentSerializer.Meta):
        fields = (*SegmentSerializer.Meta.fields, "member_count")

    def get_member_count(self, segment) -> int:
        return segment_profiles(segment).count()


class SegmentQuerySerializer(serializers.Serializer):
    """``?segment=<id>`` on the audience reports (stats, retention): only that segment's members."""

    segment = serializers.IntegerField(
        min_value=1, required=False, help_text="A segment id: only its members. Absent or empty: all profiles."
    )

    def requested_segment(self) -> Segment | None:
        """The segment asked for (None for all profiles); an unknown id is a 404."""
        segment_id = self.validated_data.get("segment")
        return None if segment_id is None else get_object_or_404(Segment, pk=segment_id)
