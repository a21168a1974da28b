"""API views for records and profiles: the seed's routes, the v1 resources and identity governance.

Views validate with serializers and hand records to ``records_ingest`` and decisions to
``users_app.governance``; they hold no rules.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import Http404
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import exceptions, generics, serializers, status, views
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import JSONParser
from rest_framework.renderers import BrowsableAPIRenderer
from rest_framework.response import Response

from analytics_site.api import OrjsonRenderer, PayloadTooLarge, PersonalDataViewSet

from .access import (
    CanErase,
    CanGovern,
    CanIngest,
    CanReadLinks,
    CanReadPersonalData,
    IngestRateThrottle,
    ReadRateThrottle,
)
from .audit import request_actor
from .erasure import ErasureError, person_erase
from .filtersets import ProfileFilterSet
from .governance import (
    DecisionError,
    DecisionResult,
    decision_reverse,
    link_approve,
    link_reject,
    pending_links,
    profile_explain,
    profile_split,
)
from .governance_serializers import (
    EXPLAIN_LIMIT,
    DecisionResultSerializer,
    ExplanationSerializer,
    LinkDecisionSerializer,
    PendingLinkSerializer,
    ProfileSplitSerializer,
)
from .ingestion import IncomingRecord, RecordOutcome, records_ingest, run_with_retries
from .locks import WriterBusy
from .models import QUEUED, IdentifierKind, ImportRun, LinkDecision, Profile, RawRecord
from .queued import queue_only
from .resolution import resolve_records
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
    plainly_valid_item,
)

MAX_INGEST_BYTES = 64 * 1024
MAX_BATCH_BYTES = 8 * 1024 * 1024
IDEMPOTENCY_HEADER = "Idempotency-Key"
RESPOND_ASYNC = "respond-async"  # RFC 7240: ``Prefer: respond-async`` asks for queued ingestion
PREFER_PARAMETER = OpenApiParameter(
    "Prefer",
    str,
    OpenApiParameter.HEADER,
    required=False,
    description="`respond-async`: answer 202 once the record is stored, with status `queued` and no profile "
    "yet; `manage.py resolve_queued` resolves it behind (README, Asynchronous ingestion).",
)
INGEST_STATUS_CODES = {"created": status.HTTP_201_CREATED, QUEUED: status.HTTP_202_ACCEPTED}
PROFILE_ACTION_SERIALIZERS = {
    "retrieve": ProfileDetailSerializer,
    "explain": ExplanationSerializer,
    "split": ProfileSplitSerializer,
}


def profiles_for_documents(queryset):
    """Profiles with what the seed's document shape reads, in three queries for any number."""
    return queryset.with_interest_names().prefetch_related("identifiers")


class IngestBase(views.APIView):
    permission_classes = [CanIngest]
    throttle_classes = [IngestRateThrottle]
    parser_classes = [JSONParser]
    renderer_classes = [OrjsonRenderer, BrowsableAPIRenderer]
    max_body_bytes = MAX_INGEST_BYTES

    # Whether this request asked to be answered before its records are resolved (read in ``initial``).
    respond_async = False

    def ingest(self, records: list[IncomingRecord]) -> list[RecordOutcome]:
        """Store and resolve the records, or only store them if the client asked to be answered
        before they are resolved."""
        resolve = queue_only if self.respond_async else resolve_records
        return run_with_retries(lambda: records_ingest(records=records, resolve=resolve)).outcomes

    def respond(self, body, code: int) -> Response:
        headers = {"Preference-Applied": RESPOND_ASYNC} if self.respond_async else None
        return Response(body, status=code, headers=headers)

    def initial(self, request, *args, **kwargs):
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > self.max_body_bytes:
            raise PayloadTooLarge(f"Request body over {self.max_body_bytes} bytes.")
        preferences = request.headers.get("Prefer", "").split(",")
        self.respond_async = any(p.split(";")[0].strip().lower() == RESPOND_ASYNC for p in preferences)
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
            202: OpenApiResponse(
                IngestResultSerializer, description="With `Prefer: respond-async`: stored, status `queued`."
            ),
            400: OpenApiResponse(description="Errors by field."),
        },
        parameters=[
            OpenApiParameter(IDEMPOTENCY_HEADER, str, OpenApiParameter.HEADER, required=False),
            PREFER_PARAMETER,
        ],
    )
    def post(self, request):
        item = request.data
        # Items of the usual shape skip DRF's field machinery: building the serializer's fields
        # (deep copies of the nested ones) costs more than any other step but the database's.
        if not plainly_valid_item(item):
            serializer = IngestSerializer(data=item)
            serializer.is_valid(raise_exception=True)
            item = serializer.validated_data
        message_id = item.get("message_id") or request.headers.get(IDEMPOTENCY_HEADER)
        if message_id is not None and len(message_id) > 200:
            raise ValidationError({"message_id": ["At most 200 characters."]})
        record = incoming(request.data["data"], message_id)
        (outcome,) = self.ingest([record])
        if outcome.status == "rejected":
            return Response(self.rejection_errors(outcome), status=status.HTTP_400_BAD_REQUEST)
        code = INGEST_STATUS_CODES.get(outcome.status, status.HTTP_200_OK)
        return self.respond(self.result(outcome, message_id), code)


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
            ),
            202: OpenApiResponse(
                IngestResultSerializer(many=True),
                description="With `Prefer: respond-async`: one result per item, status `queued` for those stored.",
            ),
        },
        parameters=[PREFER_PARAMETER],
    )
    def post(self, request):
        envelope = IngestBatchSerializer(data=request.data)
        envelope.is_valid(raise_exception=True)
        results: list[dict | None] = []
        records, positions, message_ids = [], [], []
        # One serializer validates the items that need it, as DRF's ListSerializer does: building
        # its fields (deep copies of nested serializers) for each item cost more than storing them.
        item_serializer = IngestSerializer()
        for position, item in enumerate(envelope.validated_data["batch"]):
            try:
                validated = item if plainly_valid_item(item) else item_serializer.run_validation(item)
            except ValidationError as exc:
                errors = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
                results.append(self.result(RecordOutcome("rejected"), None, errors=errors))
                continue
            message_id = validated.get("message_id")
            records.append(incoming(item["data"], message_id))
            positions.append(position)
            message_ids.append(message_id)
            results.append(None)
        outcomes = self.ingest(records) if records else []
        for position, message_id, outcome in zip(positions, message_ids, outcomes, strict=True):
            errors = self.rejection_errors(outcome) if outcome.status == "rejected" else None
            results[position] = self.result(outcome, message_id, errors=errors)
        code = status.HTTP_202_ACCEPTED if self.respond_async else status.HTTP_200_OK
        return self.respond(results, code)


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


class WriterBusyConflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "Another import or rebuild is running; try again when it is done."
    default_code = "writer_busy"


DECISION_RESPONSES = {
    200: OpenApiResponse(DecisionResultSerializer, description="Decided: the profiles its records make now."),
    409: OpenApiResponse(
        inline_serializer("WriterBusy", {"detail": serializers.CharField()}),
        description="An import or rebuild is running, and decisions wait for it: nothing changed; try again later.",
    ),
}


def decision_answer(decide: Callable[[], DecisionResult]) -> Response:
    """A link decision's answer: 200 with what it did, or its refusal as a 400 naming the field at fault,
    or a 409 while an import or rebuild holds the writer lock. A refused decision changed nothing."""
    try:
        result = decide()
    except DecisionError as exc:
        raise ValidationError({exc.field: [str(exc)]}) from None
    except WriterBusy as exc:
        raise WriterBusyConflict(str(exc)) from None
    return Response(result.as_dict())


class ProfileViewSet(PersonalDataViewSet):
    """Profiles: one per person. Filter with the same parameters as the cohort route."""

    queryset = Profile.objects.with_interest_names()
    filterset_class = ProfileFilterSet
    # Whole identifiers only ("=" is an exact, case-insensitive match): no partial matching on PII.
    search_fields = ["=identifiers__value"]
    ordering_fields = ["id", "first_seen", "last_seen", "age", "cookie_count"]

    def get_serializer_class(self):
        return PROFILE_ACTION_SERIALIZERS.get(self.action, ProfileSerializer)

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

    @extend_schema(
        summary="Why the profile is one person",
        description=f"The profile's raw records in arrival order (the first {EXPLAIN_LIMIT}), each with what it did: "
        "the identifiers it joined through, brought or merged profiles through, and the links it would have made "
        "and did not (held for review, or kept apart by a decision); then the decisions that shaped the profile.",
        responses={200: ExplanationSerializer},
    )
    @action(detail=True, filter_backends=[])
    def explain(self, request, pk=None, format=None):
        return Response(self.get_serializer(profile_explain(self.get_object(), limit=EXPLAIN_LIMIT)).data)

    @extend_schema(
        summary="Split an identifier off the profile",
        description="Detaches one of the profile's identifiers (a shared info@ mailbox, a shop's tablet cookie) "
        "from its others: the profile's records are resolved again without that link, and those that no longer "
        "connect form their own profiles. The decision is kept, so later records and rebuilds keep them apart "
        "too; reverse it at /api/v1/link-decisions/{id}/reverse/. Needs a govern key.",
        request=ProfileSplitSerializer,
        responses=DECISION_RESPONSES,
    )
    @action(detail=True, methods=["post"], permission_classes=[CanGovern], filter_backends=[])
    def split(self, request, pk=None, format=None):
        profile = self.get_object()
        body = self.get_serializer(data=request.data)
        body.is_valid(raise_exception=True)
        actor = request_actor(request)
        return decision_answer(lambda: profile_split(profile=profile, actor=actor, **body.validated_data))


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


class PendingLinkViewSet(PersonalDataViewSet):
    """The review queue: links the identity guards held instead of making, oldest first.

    ``approve/`` makes the link (the two profiles merge); ``reject/`` keeps the identifier apart from the
    record's person, now and for their later records. Both need a govern key. A decision replays the
    profiles it touches: a link held again keeps its id, one no longer held leaves the queue.
    """

    permission_classes = [CanReadLinks]
    serializer_class = PendingLinkSerializer
    filterset_fields = ["reason", "kind"]
    # Not every serializer field: sorting by the identifier would leak its order to masking keys.
    ordering_fields = ["id", "held_at"]
    # Oldest first, as ``pending_links()``: ids grow with ``held_at`` (both set as the row is made), and a
    # unique key keeps cursor pages from repeating or skipping rows.
    ordering = ["id"]

    def get_queryset(self):
        return pending_links()

    @extend_schema(summary="Approve a held link: make it (a merge)", request=None, responses=DECISION_RESPONSES)
    @action(detail=True, methods=["post"], permission_classes=[CanGovern], filter_backends=[])
    def approve(self, request, pk=None, format=None):
        held, actor = self.get_object(), request_actor(request)
        return decision_answer(lambda: link_approve(held=held, actor=actor))

    @extend_schema(
        summary="Reject a held link: keep the identifier apart from the record's person",
        request=None,
        responses=DECISION_RESPONSES,
    )
    @action(detail=True, methods=["post"], permission_classes=[CanGovern], filter_backends=[])
    def reject(self, request, pk=None, format=None):
        held, actor = self.get_object(), request_actor(request)
        return decision_answer(lambda: link_reject(held=held, actor=actor))


class LinkDecisionViewSet(PersonalDataViewSet):
    """Link decisions, newest first: approved and rejected held links and splits, reversed ones kept as history.

    ``reverse/`` undoes one (re-links what a split or a rejection detached; takes an approval back) and
    replays the profiles without it. It needs a govern key.
    """

    queryset = LinkDecision.objects.all()
    permission_classes = [CanReadLinks]
    serializer_class = LinkDecisionSerializer
    filterset_fields = ["kind"]
    ordering_fields = ["id", "created_at"]

    @extend_schema(
        summary="Reverse a decision (re-link, or undo an approval)", request=None, responses=DECISION_RESPONSES
    )
    @action(detail=True, methods=["post"], permission_classes=[CanGovern], filter_backends=[])
    def reverse(self, request, pk=None, format=None):
        decision, actor = self.get_object(), request_actor(request)
        return decision_answer(lambda: decision_reverse(decision=decision, actor=actor))
