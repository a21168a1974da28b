"""Raw records, profiles and what links them.

``RawRecord`` is the append-only log (the seed's ``users`` collection); ``Profile`` is one real
person (the seed's ``unique``), derived from the raw records by ``users_app.resolution`` and
rebuildable from them at any time. Invariants that must never break (one owner per identifier,
one raw record per source key, one import per file) are database constraints.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q


class IdentifierKind(models.TextChoices):
    COOKIE = "cookie", "Cookie"
    EMAIL = "email", "Email"
    PHONE = "phone", "Phone"


class ImportRun(models.Model):
    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        INTERRUPTED = "interrupted", "Interrupted"
        COMPLETED = "completed", "Completed"
        FAILED = "failed", "Failed"

    file_name = models.CharField(max_length=255)
    sha256 = models.CharField(max_length=64, help_text="Checksum of the file's bytes.")
    size_bytes = models.BigIntegerField(default=0)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.RUNNING)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Last physical line whose batch is committed: an interrupted run resumes after it.
    lines_done = models.PositiveIntegerField(default=0)
    total_lines = models.PositiveIntegerField(default=0, help_text="Physical lines in the file (progress).")
    rows = models.PositiveIntegerField(default=0)
    accepted = models.PositiveIntegerField(default=0)
    rejected = models.PositiveIntegerField(default=0)
    suppressed = models.PositiveIntegerField(
        default=0, help_text="Rows dropped, not stored: they hold an identifier of a person erased on request."
    )
    warnings = models.PositiveIntegerField(default=0, help_text="Accepted rows with warnings.")
    profiles_created = models.PositiveIntegerField(default=0)
    merges = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        constraints = [
            # One run per file content: a second import of the same bytes resumes or is a no-op.
            models.UniqueConstraint(fields=["sha256"], name="importrun_unique_sha256"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.file_name} ({self.get_status_display()})"


class ImportReject(models.Model):
    import_run = models.ForeignKey(ImportRun, on_delete=models.CASCADE, related_name="rejects")
    line_number = models.PositiveIntegerField()
    reason = models.CharField(max_length=500)
    original = models.TextField()

    class Meta:
        ordering = ["import_run", "line_number"]
        constraints = [
            models.UniqueConstraint(fields=["import_run", "line_number"], name="importreject_unique_line"),
        ]

    def __str__(self) -> str:
        return f"line {self.line_number}: {self.reason}"


class Interest(models.Model):
    key = models.CharField(max_length=100, unique=True, help_text="Case-folded name.")
    name = models.CharField(max_length=100)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ProfileQuerySet(models.QuerySet):
    def multi_device(self):
        """People seen on two or more cookies: the seed's ``cohort`` collection."""
        return self.filter(cookie_count__gte=2)

    def with_identifier(self, kind: str, value: str):
        return self.filter(identifiers__kind=kind, identifiers__value=value)

    def with_interest_names(self):
        """Interests fetched in one query for the whole page, names only."""
        return self.prefetch_related(models.Prefetch("interests", queryset=Interest.objects.only("name")))


class Profile(models.Model):
    # A profile's id is the id of the raw record that founded it (the first record that matched
    # nobody), so a rebuild from the raw log gives every person back the same id.
    id = models.BigIntegerField(primary_key=True)
    cookie = models.CharField(max_length=255, blank=True, help_text="Most recent cookie.")
    email = models.CharField(max_length=255, blank=True, help_text="Most recent email.")
    phone_number = models.CharField(max_length=20, blank=True)
    country = models.CharField(max_length=100, blank=True)
    state = models.CharField(max_length=255, blank=True)
    city = models.CharField(max_length=255, blank=True)
    age = models.PositiveSmallIntegerField(null=True, blank=True)
    gender = models.CharField(max_length=20, blank=True)
    income = models.CharField(max_length=255, blank=True, help_text="Bracket text as given.")
    income_min = models.BigIntegerField(null=True, blank=True)
    income_max = models.BigIntegerField(null=True, blank=True)
    education = models.CharField(max_length=255, blank=True)
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()
    cookie_count = models.PositiveIntegerField(default=0)
    # Trait name -> [created_at in epoch microseconds, raw record id] of the record that set it:
    # the latest wins whatever order records arrive in, and every value can say where it came from.
    trait_sources = models.JSONField(default=dict)
    interests = models.ManyToManyField(Interest, through="ProfileInterest", related_name="profiles")
    updated_at = models.DateTimeField(auto_now=True)

    objects = ProfileQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["country", "state", "city"], name="profile_location_idx"),
            # The commonest segment (a country and an age range) is answered from this index alone.
            models.Index(fields=["country", "age", "id"], name="profile_country_age_idx"),
            # The same for the multi-device cohort (about 5% of profiles), which /api/cohort/user reads.
            models.Index(
                fields=["country", "age", "id"], condition=Q(cookie_count__gte=2), name="multidevice_country_age_idx"
            ),
            models.Index(fields=["state"], name="profile_state_idx"),
            models.Index(fields=["city"], name="profile_city_idx"),
            models.Index(fields=["age"], name="profile_age_idx"),
            models.Index(fields=["gender"], name="profile_gender_idx"),
            models.Index(fields=["income_min", "income_max"], name="profile_income_idx"),
            models.Index(fields=["education"], name="profile_education_idx"),
            models.Index(fields=["first_seen"], name="profile_first_seen_idx"),
            models.Index(fields=["cookie_count"], name="profile_cookie_count_idx"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(first_seen__lte=models.F("last_seen")), name="profile_seen_order"),
            models.CheckConstraint(condition=Q(age__isnull=True) | Q(age__lte=130), name="profile_age_range"),
        ]

    def __str__(self) -> str:
        return self.email or self.cookie or f"Profile {self.pk}"


class ProfileInterest(models.Model):
    # No single-column indexes of their own: the unique constraint leads with profile and
    # profileinterest_by_interest with interest, and every extra index is work on each import.
    profile = models.ForeignKey(Profile, on_delete=models.CASCADE, db_index=False)
    interest = models.ForeignKey(Interest, on_delete=models.CASCADE, db_index=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["profile", "interest"], name="profileinterest_unique"),
        ]
        indexes = [models.Index(fields=["interest", "profile"], name="profileinterest_by_interest")]

    def __str__(self) -> str:
        return f"{self.profile_id}: {self.interest_id}"


# The outcome of a raw record stored by asynchronous ingestion and not resolved yet (``users_app.queued``).
QUEUED = "queued"


class RawRecordQuerySet(models.QuerySet):
    def queued(self):
        """Stored, not resolved yet: the queue's worker resolves them."""
        return self.filter(outcome=QUEUED)

    def not_queued(self):
        """What a rebuild replays: the queued records are left to the queue's worker."""
        return self.exclude(outcome=QUEUED)


class RawRecord(models.Model):
    class Source(models.TextChoices):
        CSV = "csv", "CSV import"
        API = "api", "API"

    # Field values exactly as received (CSV text, or the JSON payload), extra columns included.
    data = models.JSONField()
    source = models.CharField(max_length=3, choices=Source.choices)
    import_run = models.ForeignKey(
        ImportRun, null=True, blank=True, on_delete=models.PROTECT, related_name="raw_records"
    )
    line_number = models.PositiveIntegerField(null=True, blank=True)
    # csv:<sha256>:<line> or api:<message id>; NULL for an API record sent without a message id.
    # Unique through a constraint, not unique=True, which would add a second index for LIKE
    # lookups that nothing makes. NULL, not "", for records without a key: NULLs never collide.
    source_key = models.CharField(max_length=300, null=True, blank=True)  # noqa: DJ001
    received_at = models.DateTimeField(auto_now_add=True)
    created_at = models.DateTimeField(help_text="The record's own created_at, normalized to UTC.")
    warnings = models.JSONField(default=list, blank=True)
    # What ingesting it did (created / updated / merged): a retried API request gets the same answer.
    # "queued": stored by an asynchronous ingest and not resolved yet (``users_app.queued``);
    # "rejected": resolved later and refused by the rules then in force (e.g. a newly blocked value).
    outcome = models.CharField(max_length=8, blank=True)
    profile = models.ForeignKey(Profile, null=True, blank=True, on_delete=models.SET_NULL, related_name="raw_records")

    objects = RawRecordQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["source_key"], name="rawrecord_unique_source_key")]
        indexes = [
            models.Index(fields=["created_at"], name="rawrecord_created_at_idx"),
            # The queue of records stored but not yet resolved: small, whatever the size of the log.
            models.Index(fields=["id"], condition=models.Q(outcome=QUEUED), name="rawrecord_queued_idx"),
        ]

    def __str__(self) -> str:
        return f"Raw record {self.pk}"


class Identifier(models.Model):
    kind = models.CharField(max_length=6, choices=IdentifierKind.choices)
    value = models.CharField(max_length=255)
    # Indexed by identifier_profile_idx, which leads with it.
    profile = models.ForeignKey(Profile, on_delete=models.CASCADE, related_name="identifiers", db_index=False)
    first_record = models.ForeignKey(RawRecord, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["kind", "value"]
        constraints = [
            # An identifier belongs to exactly one person; concurrent writers cannot duplicate it.
            models.UniqueConstraint(fields=["kind", "value"], name="identifier_unique_kind_value"),
        ]
        indexes = [models.Index(fields=["profile", "kind"], name="identifier_profile_idx")]

    def __str__(self) -> str:
        return f"{self.kind}:{self.value}"


class ProfileMerge(models.Model):
    """The merge ledger: a record linked two profiles, and ``absorbed`` went into ``survivor``.

    Profile ids are plain integers here because either profile may be merged away later; the
    ledger outlives them.
    """

    survivor_id = models.BigIntegerField(db_index=True)
    absorbed_id = models.BigIntegerField(db_index=True)
    identifier_kind = models.CharField(max_length=6, choices=IdentifierKind.choices)
    identifier_value = models.CharField(max_length=255)
    raw_record = models.ForeignKey(RawRecord, null=True, on_delete=models.SET_NULL, related_name="+")
    merged_at = models.DateTimeField()

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.absorbed_id} → {self.survivor_id} via {self.identifier_kind}"


class BlockedIdentifier(models.Model):
    """An identifier value that must never link records (a shared info@ mailbox, a test cookie)."""

    kind = models.CharField(max_length=6, choices=IdentifierKind.choices, blank=True, help_text="Empty: any kind.")
    value = models.CharField(max_length=255)
    reason = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["kind", "value"]
        constraints = [
            models.UniqueConstraint(fields=["kind", "value"], name="blockedidentifier_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.kind or '*'}:{self.value}"


class IdentityGuards(models.Model):
    """Merge guards: links the resolver holds for review instead of making. Each guard is off while empty.

    A change is a new row, in force from ``effective_from_record`` on (the next raw record id when it
    was made), so each record is judged by the guards of its arrival, whenever it is resolved again
    (a rebuild, or the replay after a link decision): changing a guard never re-decides links made
    or held before. ``governance.guards_change`` makes the rows.
    """

    max_cookies_per_email = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="Hold a link through an email that would put more cookies than this in one profile. Empty: off.",
    )
    max_cookies_per_phone = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="The same for a phone number (only where phone matching is on). Empty: off.",
    )
    max_cookies_to_merge = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="Hold a record that would merge two profiles each already holding more cookies than this. "
        "Empty: off.",
    )
    effective_from_record = models.BigIntegerField(
        default=0, editable=False, help_text="The first raw record id these guards apply to."
    )
    changed_at = models.DateTimeField(auto_now_add=True)
    changed_by = models.CharField(max_length=200, blank=True, editable=False)

    class Meta:
        ordering = ["-effective_from_record", "-id"]
        verbose_name = verbose_name_plural = "identity guards"

    def __str__(self) -> str:
        return f"Identity guards from record {self.effective_from_record}"

    @classmethod
    def current(cls) -> IdentityGuards:
        """The guards in force for new records (all off when none were ever set)."""
        return cls.objects.order_by("-effective_from_record", "-id").first() or cls()


class LinkDecision(models.Model):
    """A person's decision about a link, the input ``rebuild_profiles`` replays beside the raw log.

    ``approve``: the held link of ``raw_record`` through the identifier is made despite the guards.
    ``detach``: the identifier no longer links any record that also holds one of ``anchors`` (the
    other identifiers of the profile it was detached from): a rejected held link, or a split.
    A reversed decision (re-link, or undo) no longer applies; the row stays as history.
    """

    class Kind(models.TextChoices):
        APPROVE = "approve", "Approve held link"
        DETACH = "detach", "Detach identifier"

    kind = models.CharField(max_length=7, choices=Kind.choices)
    identifier_kind = models.CharField(max_length=6, choices=IdentifierKind.choices)
    identifier_value = models.CharField(max_length=255)
    raw_record = models.ForeignKey(
        "RawRecord", null=True, blank=True, on_delete=models.CASCADE, related_name="link_decisions"
    )
    anchors = models.JSONField(default=list, blank=True, help_text="[[kind, value], ...] kept apart from it.")
    profile_id = models.BigIntegerField(null=True, blank=True, help_text="The profile it was decided on.")
    reason = models.CharField(max_length=300, blank=True)
    actor = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)
    reversed_at = models.DateTimeField(null=True, blank=True)
    reversed_by = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["identifier_kind", "identifier_value"], name="linkdecision_identifier_idx")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.identifier_kind}:{self.identifier_value}"

    @property
    def active(self) -> bool:
        return self.reversed_at is None


class HeldLinkQuerySet(models.QuerySet):
    def pending(self):
        """The review queue: links held by a guard, awaiting approval or rejection."""
        return self.exclude(reason=HeldLink.Reason.DETACHED)

    def with_target(self):
        """``target_profile_id`` on each link: the profile owning its identifier now, which approving
        it would join (None when no one owns it). One query for a whole page."""
        owner = Identifier.objects.filter(kind=models.OuterRef("kind"), value=models.OuterRef("value"))
        return self.annotate(target_profile_id=models.Subquery(owner.values("profile_id")[:1]))


class HeldLink(models.Model):
    """A link a record would have made and the resolver did not: held by a guard (the review queue)
    or kept apart by a ``detach`` decision. Derived like profiles, rebuilt with them."""

    class Reason(models.TextChoices):
        COOKIE_CAP = "cap", "Cookie cap"
        MERGE_GUARD = "merge", "Merge guard"
        DETACHED = "detached", "Detached"

    raw_record = models.ForeignKey(RawRecord, on_delete=models.CASCADE, related_name="held_links")
    kind = models.CharField(max_length=6, choices=IdentifierKind.choices)
    value = models.CharField(max_length=255)
    reason = models.CharField(max_length=8, choices=Reason.choices)
    detail = models.CharField(max_length=300, blank=True)
    decision = models.ForeignKey(LinkDecision, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    held_at = models.DateTimeField()

    objects = HeldLinkQuerySet.as_manager()

    class Meta:
        ordering = ["raw_record", "kind", "value"]
        constraints = [
            models.UniqueConstraint(fields=["raw_record", "kind", "value"], name="heldlink_unique_record_identifier"),
        ]
        indexes = [models.Index(fields=["kind", "value"], name="heldlink_identifier_idx")]

    def __str__(self) -> str:
        return f"record {self.raw_record_id} via {self.kind}:{self.value} ({self.get_reason_display()})"


class PendingLinkManager(models.Manager):
    def get_queryset(self):
        return HeldLinkQuerySet(self.model, using=self._db).pending()


class PendingLink(HeldLink):
    """The review queue as the admin shows it: the held links a guard holds, without those a
    decision keeps apart."""

    objects = PendingLinkManager()

    class Meta:
        proxy = True
        verbose_name = "link held for review"
        verbose_name_plural = "links held for review"


class Suppression(models.Model):
    """An identifier of a person erased on request: records later sent with it are dropped, not stored.

    Only an HMAC-SHA256 of ``kind:value`` (the normalized value) under ``settings.PII_HASH_KEY`` is
    kept, never the value, so the list itself holds no personal data; ``users_app.suppression``
    computes and looks up the hashes. Rotating the key forgets every suppression.
    """

    kind = models.CharField(max_length=6, choices=IdentifierKind.choices)
    value_hash = models.CharField(max_length=64, help_text="HMAC-SHA256 (hex) of kind:value.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # The hash first: ingestion looks a batch's hashes up whatever their kind, and this
            # unique index answers that lookup.
            models.UniqueConstraint(fields=["value_hash", "kind"], name="suppression_unique_hash_kind"),
        ]

    def __str__(self) -> str:
        return f"{self.kind}:{self.value_hash[:12]}…"


class ApiKey(models.Model):
    """A key for API clients. Only a hash is stored; the key itself is shown once, at creation."""

    class Scope(models.TextChoices):
        INGEST = "ingest", "Ingest records"
        READ = "read", "Read personal data"
        ERASE = "erase", "Erase people on request"
        GOVERN = "govern", "Review held links, split and re-link profiles"

    name = models.CharField(max_length=100)
    scope = models.CharField(max_length=6, choices=Scope.choices)
    prefix = models.CharField(max_length=12, unique=True, help_text="First characters of the key, to find it.")
    key_hash = models.CharField(max_length=64, help_text="sha256 of the whole key.")
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    mask_pii = models.BooleanField(
        "mask personal data",
        default=False,
        help_text="Read keys only: emails and phone numbers come back masked (j***@example.com, +1******1087).",
    )

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"
        constraints = [
            # Ingest keys read nothing, so a masking flag on one would only mislead.
            models.CheckConstraint(condition=Q(mask_pii=False) | Q(scope="read"), name="apikey_mask_pii_read_only"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.scope}, {self.prefix}…)"

    def clean(self):
        if self.mask_pii and self.scope != self.Scope.READ:
            raise ValidationError({"mask_pii": "Only read keys answer with personal data to mask."})


class AuditEvent(models.Model):
    """Who did what to personal data or access to it, and when: written by ``users_app.audit``, never edited."""

    class Action(models.TextChoices):
        KEY_CREATED = "key_created", "API key created"
        KEY_CHANGED = "key_changed", "API key changed"
        KEY_REVOKED = "key_revoked", "API key revoked"
        EXPORT = "export", "Export"
        ERASURE = "erasure", "Erasure"
        LINK_DECISION = "link_decision", "Link decision"
        GUARDS_CHANGED = "guards_changed", "Identity guards changed"

    actor = models.CharField(max_length=200, help_text="user:<username>, key:<name> (<prefix>) or cli:<os user>.")
    action = models.CharField(max_length=20, choices=Action.choices)
    summary = models.CharField(max_length=500)
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "audit event"

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.actor}: {self.summary}"
