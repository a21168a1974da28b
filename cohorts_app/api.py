"""Cohorts over the API: the seed's GET /api/cohort/user, the multi-device resource and saved segments."""

from django.db.models import QuerySet
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, pagination, permissions, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from analytics_site.api import BigListPagination, PersonalDataViewSet, positive_query_integer
from users_app.access import CanReadPersonalData, ReadRateThrottle
from users_app.api import ProfileViewSet, profiles_for_documents
from users_app.filtersets import ProfileFilterSet
from users_app.models import Profile
from users_app.serializers import ProfileSerializer, SeedProfileSerializer

from .models import Segment
from .segments import segment_profiles
from .serializers import SegmentDetailSerializer, SegmentQuerySerializer, SegmentSerializer


class SeedLimitOffsetPagination(pagination.LimitOffsetPagination):
    """The seed answered a bare JSON list; the total travels in X-Total-Count."""

    default_limit = 100
    max_limit = 1000

    def get_limit(self, request):
        return positive_query_integer(request, self.limit_query_param, self.default_limit, self.max_limit, False)

    def get_offset(self, request):
        return positive_query_integer(request, self.offset_query_param, 0)

    def get_paginated_response(self, data):
        return Response(data, headers={"X-Total-Count": str(self.count)})

    def get_paginated_response_schema(self, schema):
        return schema


class CohortUserView(generics.ListAPIView):
    """GET /api/cohort/user: multi-device people matching the filters, as ``[{"data": ...}]``.

    Answers 200 with ``[]`` when nobody matches (the seed answered 404).
    """

    permission_classes = [CanReadPersonalData]
    throttle_classes = [ReadRateThrottle]
    pagination_class = SeedLimitOffsetPagination
    filterset_class = ProfileFilterSet
    serializer_class = SeedProfileSerializer
    ordering = ["id"]

    def get_queryset(self):
        return profiles_for_documents(Profile.objects.multi_device().order_by("id"))

    @extend_schema(
        parameters=[OpenApiParameter("X-Total-Count", int, OpenApiParameter.HEADER, response=True)],
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class CohortMemberViewSet(PersonalDataViewSet):
    """Profiles seen on two or more cookies, with the profile filters."""

    queryset = Profile.objects.multi_device().with_interest_names()
    serializer_class = ProfileSerializer
    filterset_class = ProfileFilterSet
    # Not DRF's default (every serializer field): sorting by email or phone would leak them to masking keys.
    ordering_fields = ProfileViewSet.ordering_fields


class CanManageSegments(CanReadPersonalData):
    """Reading segments (and their members) needs a read key or staff; changing them needs staff."""

    message = "Reading segments needs a read key (or a staff login); changing them needs a staff login."

    def has_permission(self, request, view):
        if request.method in permissions.SAFE_METHODS:
            return super().has_permission(request, view)
        return bool(request.user and request.user.is_authenticated and request.user.is_staff)


class SegmentViewSet(viewsets.ModelViewSet):
    """Saved segments: named profile filters (the same parameters as ``/api/v1/profiles/``).

    ``members/`` lists who matches now; the member count is in the detail.
    """

    queryset = Segment.objects.all()
    permission_classes = [CanManageSegments]
    throttle_classes = [ReadRateThrottle]
    pagination_class = BigListPagination
    filter_backends: list = []

    def get_serializer_class(self):
        return SegmentDetailSerializer if self.action == "retrieve" else SegmentSerializer

    def perform_create(self, serializer):
        serializer.save(created_by=self.request.user if self.request.user.is_authenticated else None)

    @extend_schema(responses=ProfileSerializer(many=True))
    @action(detail=True, filter_backends=[])
    def members(self, request, pk=None, format=None):
        profiles = segment_profiles(self.get_object()).with_interest_names()
        page = self.paginate_queryset(profiles)
        return self.get_paginated_response(
            ProfileSerializer(page, many=True, context=self.get_serializer_context()).data
        )


class AudienceReportView(generics.GenericAPIView):
    """A report over profiles: all of them or one segment's (``?segment=``), narrowed by any profile filters."""

    permission_classes = [CanReadPersonalData]
    throttle_classes = [ReadRateThrottle]
    queryset = Profile.objects.all()
    filterset_class = ProfileFilterSet
    filter_backends = [DjangoFilterBackend]
    query_serializer_class = SegmentQuerySerializer

    def report_input(self) -> tuple[dict, Segment | None, QuerySet[Profile]]:
        """The report's validated parameters, the segment asked for, and the profiles to report on."""
        query = self.query_serializer_class(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        segment = query.requested_segment()
        profiles = self.filter_queryset(segment_profiles(segment) if segment else self.get_queryset())
        return query.validated_data, segment, profiles
