from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from analytics_site.api import HealthView
from cohorts_app.api import CohortMemberViewSet, CohortUserView, SegmentViewSet
from cohorts_app.retention_views import RetentionView
from cohorts_app.stats_views import StatsView
from users_app.api import (
    ImportRunViewSet,
    IngestBatchView,
    IngestView,
    LinkDecisionViewSet,
    PendingLinkViewSet,
    ProfileViewSet,
    RawRecordViewSet,
    UserLookupView,
)

handler404 = "analytics_site.api.not_found"

router = DefaultRouter()
router.register("profiles", ProfileViewSet)
router.register("raw-records", RawRecordViewSet)
router.register("import-runs", ImportRunViewSet)
router.register("cohort-members", CohortMemberViewSet, basename="cohort-member")
router.register("segments", SegmentViewSet)
router.register("links/pending", PendingLinkViewSet, basename="pending-link")
router.register("link-decisions", LinkDecisionViewSet, basename="link-decision")

urlpatterns = [
    # The seed's routes, unchanged.
    path("api/ingest", IngestView.as_view(), name="ingest"),
    path("api/ingest/batch", IngestBatchView.as_view(), name="ingest-batch"),
    path("api/user", UserLookupView.as_view(), name="user"),
    path("api/cohort/user", CohortUserView.as_view(), name="cohort-user"),
    path("api/health", HealthView.as_view(), name="health"),
    # The resource API and its documentation.
    path("api/v1/", include(router.urls)),
    path("api/v1/stats/", StatsView.as_view(), name="stats"),
    path("api/v1/retention/", RetentionView.as_view(), name="retention"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="redoc"),
    path("api-auth/", include("rest_framework.urls")),
    path("admin/", admin.site.urls),
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
]
