"""The audience dashboard: GET /api/v1/stats/ and the admin page that draws it.

The page holds no numbers itself: its script fetches the API with the staff session, so the page, the
API and any other client read the same figures from ``cohorts_app.stats.audience_stats``.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.urls import path, reverse
from django.views.generic import TemplateView
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response

from .api import AudienceReportView
from .models import Segment
from .serializers import SegmentQuerySerializer
from .stats import audience_stats

SEGMENT_PARAMETER = "segment"


COUNT_FIELDS = {"label": serializers.CharField(), "count": serializers.IntegerField()}
BOUND_FIELDS = {
    "min": serializers.IntegerField(allow_null=True, help_text="Lowest value in the bucket; null: no lower bound."),
    "max": serializers.IntegerField(allow_null=True, help_text="Highest value; null: no upper bound."),
}
COUNTS_SCHEMA = inline_serializer("AudienceCount", COUNT_FIELDS, many=True)
BUCKETS_SCHEMA = inline_serializer("AudienceBucket", COUNT_FIELDS | BOUND_FIELDS, many=True)

AUDIENCE_STATS_SCHEMA = inline_serializer(
    "AudienceStats",
    {
        "segment": inline_serializer(
            "AudienceStatsSegment",
            {"id": serializers.IntegerField(), "name": serializers.CharField()},
            allow_null=True,
            help_text="The segment asked for, or null for all profiles.",
        ),
        "total": serializers.IntegerField(help_text="Profiles counted."),
        "countries": COUNTS_SCHEMA,
        "ages": BUCKETS_SCHEMA,
        "genders": COUNTS_SCHEMA,
        "interests": COUNTS_SCHEMA,
        "income": BUCKETS_SCHEMA,
        "income_by_gender": inline_serializer(
            "AudienceIncomeByGender",
            {
                "brackets": serializers.ListField(child=serializers.CharField()),
                "genders": inline_serializer(
                    "AudienceIncomeByGenderSeries",
                    {
                        "label": serializers.CharField(),
                        "counts": serializers.ListField(child=serializers.IntegerField()),
                    },
                    many=True,
                ),
            },
        ),
        "new_profiles": inline_serializer(
            "AudienceNewProfiles",
            {
                "period": serializers.CharField(help_text="week, month or year, chosen by the span of first_seen."),
                "points": inline_serializer(
                    "AudienceNewProfilesPoint",
                    {"start": serializers.DateField(), "count": serializers.IntegerField()},
                    many=True,
                ),
            },
        ),
    },
)


class StatsView(AudienceReportView):
    """Audience statistics of all profiles or of one segment, narrowed by any profile filters.

    Counts by country (top 15, Other, Unknown), age bucket, gender, interest (top 20), income bracket,
    income bracket per gender, and new profiles per week, month or year of first_seen.
    """

    @extend_schema(parameters=[SegmentQuerySerializer], filters=True, responses={200: AUDIENCE_STATS_SCHEMA})
    def get(self, request):
        _, segment, profiles = self.report_input()
        return Response(
            {
                "segment": {"id": segment.pk, "name": segment.name} if segment else None,
                **audience_stats(profiles),
            }
        )


# One canvas each, ``chart-<key>``, drawn by static/cohorts_app/dashboard.js.
DASHBOARD_CHARTS = (
    {"key": "countries", "title": "Countries"},
    {"key": "ages", "title": "Age"},
    {"key": "genders", "title": "Gender"},
    {"key": "interests", "title": "Top interests"},
    {"key": "income", "title": "Income"},
    {"key": "income-by-gender", "title": "Income by gender"},
    {"key": "new-profiles", "title": "New profiles", "wide": True},
)


class DashboardView(TemplateView):
    """The admin's audience dashboard: a segment selector and one chart per statistic."""

    template_name = "admin/dashboard.html"
    site = None  # the AdminSite serving the page, for its chrome (set by admin_urls)

    def get_context_data(self, **kwargs):
        selected = self.request.GET.get(SEGMENT_PARAMETER, "")
        stats_url = reverse("stats")
        return {
            **super().get_context_data(**kwargs),
            **self.site.each_context(self.request),
            "title": "Audience dashboard",
            "segments": Segment.objects.only("pk", "name"),
            "charts": DASHBOARD_CHARTS,
            "selected_segment": selected,
            "stats_url": f"{stats_url}?{urlencode({SEGMENT_PARAMETER: selected})}" if selected else stats_url,
        }


def admin_urls(site):
    return [path("dashboard/", site.admin_view(DashboardView.as_view(site=site)), name="dashboard")]
