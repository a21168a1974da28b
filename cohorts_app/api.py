"""The multi-device cohort over the API: the seed's GET /api/cohort/user and the v1 resource."""

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, pagination
from rest_framework.response import Response

from analytics_site.api import PersonalDataViewSet, positive_query_integer
from users_app.access import CanReadPersonalData, ReadRateThrottle
from users_app.api import profiles_for_documents
from users_app.filtersets import ProfileFilterSet
from users_app.models import Profile
from users_app.serializers import ProfileSerializer, SeedProfileSerializer


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
