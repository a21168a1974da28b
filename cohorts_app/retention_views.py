"""Acquisition cohorts and retention: GET /api/v1/retention/ and the admin page drawing it as a heatmap.

Both read the same parameters (``period``, ``periods``, ``segment``) through ``RetentionQuerySerializer`` and
ask ``cohorts_app.retention.retention_table`` for the numbers; the page colours them server-side, so it
needs no script.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from django.urls import path
from django.views.generic import TemplateView
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.fields import empty
from rest_framework.response import Response

from users_app.models import Profile

from .api import AudienceReportView
from .models import Segment
from .retention import (
    DEFAULT_PERIODS,
    MAX_PERIODS,
    Cohort,
    Retained,
    RetentionPeriod,
    RetentionTable,
    retention_table,
)
from .segments import segment_profiles
from .serializers import SegmentQuerySerializer


class GivenMeansValid:
    """Sent empty is an error, not the default: these shape the answer (like ``limit``), they are not filters."""

    def get_value(self, dictionary):
        return dictionary.get(self.field_name, empty)


class ShapeChoiceField(GivenMeansValid, serializers.ChoiceField):
    pass


class ShapeIntegerField(GivenMeansValid, serializers.IntegerField):
    pass


class RetentionQuerySerializer(SegmentQuerySerializer):
    period = ShapeChoiceField(
        choices=RetentionPeriod.choices, default=RetentionPeriod.WEEK, help_text="Cohorts by week or by month."
    )
    periods = ShapeIntegerField(
        min_value=1,
        max_value=MAX_PERIODS,
        default=DEFAULT_PERIODS,
        help_text="How many periods back from the latest record: the cohorts first seen in them, and their returns.",
    )


class RetentionRetainedSerializer(serializers.Serializer):
    offset = serializers.IntegerField(help_text="Periods after the cohort's own (1 = the next one).")
    count = serializers.IntegerField(help_text="Members of the cohort with at least one record in that period.")
    share = serializers.FloatField(help_text="count / cohort size, from 0 to 1.")


class RetentionCohortSerializer(serializers.Serializer):
    start = serializers.DateField(help_text="First day of the period (a Monday, or the 1st of the month), UTC.")
    size = serializers.IntegerField(help_text="Profiles first seen in the period.")
    retained = RetentionRetainedSerializer(
        many=True, help_text="One entry per later period up to the latest record: periods still to come are absent."
    )


class RetentionTableSerializer(serializers.Serializer):
    period = serializers.CharField(help_text="week or month.")
    periods = serializers.IntegerField(help_text="How many periods back the cohorts go.")
    latest = serializers.DateTimeField(allow_null=True, help_text="The latest record's created_at: the table's now.")
    offsets = serializers.ListField(
        child=serializers.IntegerField(), help_text="Column offsets: 1 up to the oldest cohort's last."
    )
    cohorts = RetentionCohortSerializer(
        many=True, help_text="Oldest first; periods when nobody was first seen are left out."
    )


class RetentionView(AudienceReportView):
    """Acquisition cohorts (profiles by week or month of first_seen) and the share seen again in each later period.

    Narrowed to one segment and/or by any profile filters.
    """

    query_serializer_class = RetentionQuerySerializer

    @extend_schema(parameters=[RetentionQuerySerializer], filters=True, responses={200: RetentionTableSerializer})
    def get(self, request):
        params, _, profiles = self.report_input()
        table = retention_table(
            profiles,
            period=params["period"],
            periods=params["periods"],
        )
        return Response(RetentionTableSerializer(table).data)


@dataclass(frozen=True)
class HeatmapCell:
    percent: str
    count: int
    style: str


# The admin's primary blue. Opacity grows with the square root of the share: returns are often a few
# percent, and a linear scale would leave them all near white.
HEAT_RGB = "65, 118, 144"


def heatmap_cell(retained: Retained) -> HeatmapCell:
    opacity = math.sqrt(retained.share)
    text = "#fff" if opacity > 0.6 else "var(--body-fg)"
    return HeatmapCell(
        percent=f"{retained.share:.1%}",
        count=retained.count,
        style=f"background-color: rgba({HEAT_RGB}, {opacity:.2f}); color: {text};",
    )


def heatmap_rows(table: RetentionTable) -> list[tuple[Cohort, list[HeatmapCell | None]]]:
    """One row per cohort, one cell per column; None where the period has not happened yet."""
    columns = len(table.offsets)
    return [
        (cohort, [heatmap_cell(retained) for retained in cohort.retained] + [None] * (columns - len(cohort.retained)))
        for cohort in table.cohorts
    ]


class RetentionPageView(TemplateView):
    """The admin's retention heatmap, with period and segment selectors."""

    template_name = "admin/retention.html"
    site = None  # the AdminSite serving the page, for its chrome (set by admin_urls)

    def get(self, request, *args, **kwargs):
        query = RetentionQuerySerializer(data=request.GET)
        context = {
            **self.site.each_context(request),
            "title": "Acquisition cohorts & retention",
            "period_choices": RetentionPeriod.choices,
            "max_periods": MAX_PERIODS,
            "segments": Segment.objects.only("pk", "name"),
        }
        if not query.is_valid():
            selected = {name: request.GET.get(name, "") for name in RetentionQuerySerializer().fields}
            return self.render_to_response({**context, "selected": selected, "errors": query.errors}, status=400)
        params = query.validated_data
        segment = query.requested_segment()
        table = retention_table(
            segment_profiles(segment) if segment else Profile.objects.all(),
            period=params["period"],
            periods=params["periods"],
        )
        selected = {name: str(params.get(name, "")) for name in RetentionQuerySerializer().fields}
        return self.render_to_response({**context, "selected": selected, "table": table, "rows": heatmap_rows(table)})


def admin_urls(site):
    return [path("retention/", site.admin_view(RetentionPageView.as_view(site=site)), name="retention")]
