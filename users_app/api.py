"""API views for records and profiles: the seed's routes and the v1 resources.

Views validate with serializers and hand records to ``records_ingest``; they hold no rules.
"""

from __future__ import annotations

from django.http import Http404
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, status, views
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import JSONParser
from rest_framework.response import Response

from analytics_site.api import PayloadTooLarge, PersonalDataViewSet

from .access import CanErase, CanIngest, CanReadPersonalData, IngestRateThrottle, ReadRateThrottle
from .audit import request_actor
from .erasure import ErasureError, person_erase
from .filtersets import ProfileFilterSet
from .ingestion import IncomingRecord, RecordOutcome, records_ingest, run_with_retries
from .models import IdentifierKind, ImportRun, Profile, RawRecord
from .serializers import (
    ErasureResultSerializer,
    ImportRunDetailSerializer,
    ImportRunSerializer,
    IngestBatchSerializer,
    IngestResultSerializer,
    IngestSerializer,
    ProfileDetailSerializer,
    ProfileSerializer,
    RawRecordSerializer,
    SeedProfileSerializer,
    UserLookupQuerySerializer,
)

MAX_INGEST_BYTES = 64 * 1024
MAX_BATCH_BYTES = 8 * 1024 * 1024
IDEMPOTENCY_HEADER = "Idempotency-Key"


def profiles_for_documents(queryset):
    """Profiles with what the seed's document shape reads, in three queries for any number."""
    return queryset.with_interest_names().prefetch_related("identifiers")


class IngestBase(views.APIView):
    permission_classes = [CanIngest]
    throttle_classes = [IngestRateThrottle]
    parser_classes = [JSONParser]
    max_body_bytes = MAX_INGEST_BYTES

    def initial(self, request, *args, **kwargs):
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > self.max_body_bytes:
            raise PayloadTooLarge(f"Request body over {self.max_body_bytes} bytes.")
        super().initial(request, *args, **kwargs)

    @staticmethod
    def result(outcome: RecordOutcome, message_id: str | None, errors: dict | None = None) -> dict:
        body = {
            "status": outcome.status,
            "profile_id": outcome.profile_id,
            "raw_record_id": outcome.raw_record_id,
            "message_id": message_id,
            "duplicate": outcome.duplicate,
            "warnings": list(outcome.warnings),
        }
        if errors:
            body["errors"] = errors
        return body

    @staticmethod
    def rejection_errors(outcome: RecordOutcome) -> dict:
        return {"data": {field: [outcome.reason] for field in outcome.reason_fields}}


def incoming(data: dict, message_id: str | None) -> IncomingRecord:
    """The record as sent (the raw log keeps it verbatim), keyed by its message id if it has one."""
    return IncomingRecord(
        data=data, source=RawRecord.Source.API, source_key=f"api:{message_id}" if message_id else None
    )


class IngestView(IngestBase):
    """POST /api/ingest: one record, ``{"data": {...}}`` as in the seed's README."""

    @extend_schema(
        request=IngestSerializer,
        responses={
            201: OpenApiResponse(IngestResultSerializer, description="A new person."),
            200: OpenApiResponse(
                IngestResultSerializer,
                description="Joined, updated or merged a person; or, with status `suppressed`, dropped and not "
                "stored: the record holds an identifier of a person erased on request.",
            ),
            400: OpenApiResponse(description="Errors by field."),
        },
        parameters=[OpenApiParameter(IDEMPOTENCY_HEADER, str, OpenApiParameter.HEADER, required=False)],
    )
    def post(self, request):
        serializer = IngestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        message_id = serializer.validated_data.get("message_id") or request.headers.get(IDEMPOTENCY_HEADER)
        if message_id is not None and len(message_id) > 200:
            raise ValidationError({"message_id": ["At most 200 characters."]})
        record = incoming(request.data["data"], message_id)
        (outcome,) = run_with_retries(lambda: records_ingest(records=[record])).outcomes
        if outcome.status == "rejected":
            return Response(self.rejection_errors(outcome), status=status.HTTP_400_BAD_REQUEST)
        code = status.HTTP_201_CREATED if outcome.status == "created" else status.HTTP_200_OK
        return Response(self.result(outcome, message_id), status=code)


class IngestBatchView(IngestBase):
    """POST /api/ingest/batch: up to 1,000 records, a result for each; bad ones do not sink the rest."""

    max_body_bytes = MAX_BATCH_BYTES

    @extend_schema(
        request=IngestBatchSerializer,
        responses={
            200: OpenApiResponse(
                IngestResultSerializer(many=True),
                description="One result per item; status `suppressed`: dropped and not stored (an identifier of a "
                "person erased on request).",
            )
        },
    )
    def post(self, request):
        envelope = IngestBatchSerializer(data=request.data)
        envelope.is_valid(raise_exception=True)
        results: list[dict | None] = []
        records, positions, message_ids = [], [], []
        for position, item in enumerate(envelope.validated_data["batch"]):
            serializer = IngestSerializer(data=item)
            if not serializer.is_valid():
                results.append(self.result(RecordOutcome("rejected"), None, errors=serializer.errors))
                continue
            message_id = serializer.validated_data.get("message_id")
            records.append(incoming(item["data"], message_id))
            positions.append(position)
            message_ids.append(message_id)
            results.append(None)
        outcomes = run_with_retries(lambda: records_ingest(records=records)).outcomes if records else []
        for position, message_id, outcome in zip(positions, message_ids, outcomes, strict=True):
            errors = self.rejection_errors(outcome) if outcome.status == "rejected" else None
            results[position] = self.result(outcome, message_id, errors=errors)
        return Response(results)


class UserLookupView(views.APIView):
    """GET /api/user?cookie=... or ?email=...: the person's profile in the seed's shape."""

    permission_classes = [CanReadPersonalData]
    throttle_classes = [ReadRateThrottle]

    @extend_schema(
        parameters=[UserLookupQuerySerializer],
        responses={
            200: SeedProfileSerializer,
            400: OpenApiResponse(description="Neither cookie nor email given."),
            404: OpenApiResponse(description="No such person."),
        },
    )
    def get(self, request):
        query = UserLookupQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        cookie, email = query.validated_data.get("cookie"), query.validated_data.get("email", "").lower()
        kind, value = (IdentifierKind.COOKIE, cookie) if cookie else (IdentifierKind.EMAIL, email)
        profile = get_object_or_404(profiles_for_documents(Profile.objects.with_identifier(kind, value)))
        return Response(SeedProfileSerializer(profile, context={"request": request}).data)


class ProfileViewSet(PersonalDataViewSet):
    """Profiles: one per person. Filter with the same parameters as the cohort route."""

    queryset = Profile.objects.with_interest_names()
    filterset_class = ProfileFilterSet
    # Whole identifiers only ("=" is an exact, case-insensitive match): no partial matching on PII.
    search_fields = ["=identifiers__value"]
    ordering_fields = ["id", "first_seen", "last_seen", "age", "cookie_count"]

    def get_serializer_class(self):
        return ProfileDetailSerializer if self.action == "retrieve" else ProfileSerializer

    def get_queryset(self):
        queryset = super().get_queryset()
        if self.action == "retrieve":
            queryset = queryset.prefetch_related("identifiers", "raw_records")
        return queryset

    def get_permissions(self):
        return [CanErase()] if self.action == "destroy" else super().get_permissions()

    @extend_schema(
        summary="Erase a person (right to be forgotten)",
        description="Removes the profile, its identifiers, raw records, interests and merge history, and "
        "suppresses its identifiers (stored as salted hashes): records sent later with any of them are "
        "dropped and counted as `suppressed`, not stored. Needs an erase key. Cannot be undone.",
        responses={200: OpenApiResponse(ErasureResultSerializer, description="Erased: the rows removed, by table.")},
    )
    def destroy(self, request, *args, **kwargs):
        profile = generics.get_object_or_404(Profile.objects.all(), pk=kwargs["pk"])
        try:
            result = person_erase(profile=profile, dry_run=False, actor=request_actor(request))
        except ErasureError as exc:  # erased or merged away by a concurrent request
            raise Http404(str(exc)) from None
        return Response(ErasureResultSerializer(result).data)


class RawRecordViewSet(PersonalDataViewSet):
    """The raw log, read-only: every record as received."""

    queryset = RawRecord.objects.all()
    serializer_class = RawRecordSerializer
    filterset_fields = ["source", "import_run", "profile"]
    # Not DRF's default (every serializer field): sorting by the record's data would leak emails and phones.
    ordering_fields = ["id", "created_at", "received_at"]


class ImportRunViewSet(PersonalDataViewSet):
    """CSV import runs with their counts; the detail adds the reject report."""

    queryset = ImportRun.objects.all()
    filterset_fields = ["status"]

    def get_serializer_class(self):
        return ImportRunDetailSerializer if self.action == "retrieve" else ImportRunSerializer
