"""Admin for marketers: browse profiles and the raw log; edit only the block list.

Profiles, identifiers and the ledger are derived from raw records by the resolver, so they are
read-only here: editing them by hand would break the contract that a rebuild reproduces them.
People change how records link only through decisions (the review queue, split, re-link) and the
identity guards, in ``governance_admin``, which also serves the profile page's split link and its
"why these records are one person" section.
"""

from urllib.parse import urlencode

from django.contrib import admin, messages
from django.contrib.admin.options import ShowFacets
from django.core.paginator import Paginator
from django.db.models import Q
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.functional import cached_property
from django.utils.html import format_html, format_html_join

from . import governance_admin
from .access import api_key_create, api_key_revoke, api_key_set_masking
from .admin_filters import PROFILE_LIST_FILTERS
from .audit import request_actor
from .erasure import ErasureError, person_erase
from .filtersets import ProfileFilterSet
from .models import (
    ApiKey,
    AuditEvent,
    BlockedIdentifier,
    Identifier,
    ImportReject,
    ImportRun,
    Profile,
    ProfileMerge,
    RawRecord,
)
from .normalize import FieldWarning, normalize_phone
from .selectors import count_within, merge_history, planner_row_estimate
from .upload_views import UPLOAD_PERMISSION

RAW_RECORDS_SHOWN = 50
FILTER_NAMES = frozenset(ProfileFilterSet.base_filters)
COUNT_BUDGET_MS = 300
COUNT_NOT_TRIED_ABOVE = 200_000  # rows PostgreSQL cannot count within the budget anyway


class EstimatedCountPaginator(Paginator):
    """The exact count when the database gives it within 0.3 s, else PostgreSQL's planner estimate.

    A COUNT(*) over millions of profiles takes longer than the page itself; the list says when its
    count is an estimate.
    """

    estimated = False

    @cached_property
    def count(self):
        estimate = planner_row_estimate(self.object_list)
        exact = None
        if estimate is None or estimate < COUNT_NOT_TRIED_ABOVE:
            exact = count_within(self.object_list, COUNT_BUDGET_MS)
        if exact is not None:
            return exact
        self.estimated = True
        return estimate


ERASE_AT_ONCE = 100  # people per erase action: each is its own transaction, previewed first


class ReadOnlyAdmin(admin.ModelAdmin):
    paginator = EstimatedCountPaginator
    show_full_result_count = False  # no second COUNT(*) over millions of rows per page
    show_facets = ShowFacets.NEVER  # facet counts are one COUNT per filter choice

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class IdentifierInline(admin.TabularInline):
    model = Identifier
    fields = ("kind", "value", "first_record")
    readonly_fields = fields
    extra = 0
    can_delete = False


def _admin_link(obj, text=None):
    url = reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])
    return format_html('<a href="{}">{}</a>', url, text or obj)


@admin.register(Profile)
class ProfileAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "email",
        "cookie_count",
        "country",
        "age",
        "gender",
        "income",
        "education",
        "interest_list",
        "first_seen",
        "last_seen",
    )
    list_filter = PROFILE_LIST_FILTERS
    list_per_page = 50
    ordering = ("-id",)
    search_fields = ("identifiers__value",)  # the search box; matching is get_search_results'
    search_help_text = "A whole cookie, email or phone number (no partial matches on personal data)."
    change_list_template = "admin/users_app/profile/change_list.html"

    class Media:
        css = {"all": ["users_app/profile_filters.css"]}

    inlines = [IdentifierInline]
    fieldsets = (
        (None, {"fields": ("id", "email", "cookie", "phone_number", "cookie_count", "first_seen", "last_seen")}),
        ("Traits", {"fields": ("country", "state", "city", "age", "gender", "income", "education", "interest_list")}),
        ("Where each trait came from", {"fields": ("trait_source_table",)}),
        ("Raw records", {"fields": ("raw_record_table",)}),
        ("Merge ledger", {"fields": ("merge_table",)}),
        ("Why these records are one person", {"fields": ("explain_table",)}),
    )
    readonly_fields = (
        "id", "email", "cookie", "phone_number", "cookie_count", "first_seen", "last_seen", "country", "state",
        "city", "age", "gender", "income", "education", "interest_list", "trait_source_table",
        "raw_record_table", "merge_table", "explain_table",
    )  # fmt: skip

    # Filters a list implies without a parameter (the multi-device cohort's list), kept when saving a segment.
    implied_filters: dict[str, str] = {}
    actions = ["erase_selected", "split_selected"]

    @admin.action(description="Erase the selected people (right to be forgotten)", permissions=["erase"])
    def erase_selected(self, request, queryset):
        """What ``erase_person`` does, for people picked in the list: a page saying what would go, then
        the erasure once confirmed."""
        profiles = list(queryset.order_by("pk")[: ERASE_AT_ONCE + 1])
        if len(profiles) > ERASE_AT_ONCE:
            self.message_user(request, f"Select at most {ERASE_AT_ONCE} people to erase at once.", messages.ERROR)
            return None
        actor = request_actor(request)
        if request.POST.get("confirmed") != "yes":
            previews = [person_erase(profile=profile, dry_run=True, actor=actor) for profile in profiles]
            context = {
                **self.admin_site.each_context(request),
                "title": "Erase these people?",
                "opts": self.model._meta,
                "people": list(zip(profiles, previews, strict=True)),
                "rows_removed": sum(preview.rows_removed for preview in previews),
                "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            }
            return TemplateResponse(request, "admin/users_app/profile/erase_confirmation.html", context)
        erased, rows, gone = 0, 0, 0
        for profile in profiles:
            try:
                result = person_erase(profile=profile, dry_run=False, actor=actor)
            except ErasureError:  # erased or merged into another person since the page was shown
                gone += 1
                continue
            erased, rows = erased + 1, rows + result.rows_removed
        note = f" {gone} had gone meanwhile." if gone else ""
        self.message_user(request, f"Erased {erased} people: {rows} rows removed, their identifiers suppressed.{note}")
        return None

    def has_erase_permission(self, request):
        return request.user.has_perm("users_app.delete_profile")

    @admin.action(description="Split the selected profile…", permissions=["decide"])
    def split_selected(self, request, queryset):
        """The split page of the one profile picked (``governance_admin.profile_split_view``)."""
        picked = list(queryset.values_list("pk", flat=True)[:2])
        if len(picked) != 1:
            self.message_user(request, "Select exactly one profile to split.", messages.WARNING)
            return None
        return redirect(reverse("admin:users_app_profile_split", args=picked, current_app=self.admin_site.name))

    def has_decide_permission(self, request):
        return governance_admin.can_decide(request)

    def get_urls(self):
        split = path(
            "<int:profile_id>/split/",
            self.admin_site.admin_view(self.split_view),
            name="users_app_profile_split",
        )
        return [split, *super().get_urls()]

    def split_view(self, request, profile_id):
        return governance_admin.profile_split_view(self, request, profile_id)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {"can_split": governance_admin.can_decide(request), **(extra_context or {})}
        return super().change_view(request, object_id, form_url, extra_context)

    def get_queryset(self, request):
        return super().get_queryset(request).with_interest_names()

    def changelist_view(self, request, extra_context=None):
        filters = {**self.implied_filters}
        filters.update((name, value) for name, value in request.GET.items() if name in FILTER_NAMES and value.strip())
        return super().changelist_view(request, {"segment_query": urlencode(filters), **(extra_context or {})})

    def get_search_results(self, request, queryset, search_term):
        """Exact identifiers only, normalized as records are: email case, phone punctuation."""
        term = search_term.strip()
        if not term:
            return queryset, False
        match = Q(identifiers__value=term) | Q(identifiers__value=term.lower())
        try:
            phone = normalize_phone(term)
        except FieldWarning:
            phone = ""
        if phone:
            match |= Q(phone_number=phone) | Q(identifiers__value=phone)
        return queryset.filter(pk__in=Profile.objects.filter(match).values("pk")), False

    @admin.display(description="interests")
    def interest_list(self, profile):
        return ", ".join(sorted(interest.name for interest in profile.interests.all()))

    @admin.display(description="trait sources")
    def trait_source_table(self, profile):
        rows = sorted(profile.trait_sources.items())
        if not rows:
            return "-"
        records = RawRecord.objects.in_bulk([raw_id for _, (_, raw_id) in rows])
        body = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (trait, _admin_link(records[raw_id], f"#{raw_id}") if raw_id in records else f"#{raw_id}",
                 records[raw_id].created_at if raw_id in records else "")
                for trait, (_, raw_id) in rows
            ),
        )  # fmt: skip
        return format_html("<table><tr><th>trait</th><th>raw record</th><th>its created_at</th></tr>{}</table>", body)

    @admin.display(description="raw records")
    def raw_record_table(self, profile):
        records = list(profile.raw_records.order_by("-created_at", "-id")[: RAW_RECORDS_SHOWN + 1])
        body = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (_admin_link(r, f"#{r.pk}"), r.created_at, r.get_source_display(), r.data.get("cookie", ""),
                 r.data.get("email", ""))
                for r in records[:RAW_RECORDS_SHOWN]
            ),
        )  # fmt: skip
        more = ""
        if len(records) > RAW_RECORDS_SHOWN:
            url = reverse("admin:users_app_rawrecord_changelist") + f"?profile__exact={profile.pk}"
            more = format_html('<p><a href="{}">All raw records of this profile</a></p>', url)
        return format_html(
            "<table><tr><th>record</th><th>created_at</th><th>source</th><th>cookie</th><th>email</th></tr>{}</table>{}",
            body,
            more,
        )

    @admin.display(description="merges")
    def merge_table(self, profile):
        merges = merge_history(profile.pk)
        if not merges:
            return "No merges: every record joined this profile directly."
        body = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}: {}</td><td>#{}</td></tr>",
            (
                (m.merged_at, m.absorbed_id, m.survivor_id, m.identifier_kind, m.identifier_value, m.raw_record_id)
                for m in merges
            ),
        )
        return format_html(
            "<table><tr><th>when</th><th>absorbed profile</th><th>into</th><th>through</th>"
            "<th>raw record</th></tr>{}</table>",
            body,
        )

    @admin.display(description="chain of links")
    def explain_table(self, profile):
        return governance_admin.explain_table(profile)


@admin.register(RawRecord)
class RawRecordAdmin(ReadOnlyAdmin):
    list_display = ("id", "source", "import_run", "line_number", "created_at", "received_at", "outcome", "profile")
    list_filter = ("source",)
    raw_id_fields = ("profile", "import_run")


@admin.register(Identifier)
class IdentifierAdmin(ReadOnlyAdmin):
    list_display = ("kind", "value", "profile")
    list_filter = ("kind",)
    search_fields = ("=value",)


@admin.register(ProfileMerge)
class ProfileMergeAdmin(ReadOnlyAdmin):
    list_display = ("absorbed_id", "survivor_id", "identifier_kind", "identifier_value", "raw_record", "merged_at")


class ImportRejectInline(admin.TabularInline):
    model = ImportReject
    fields = ("line_number", "reason", "original")
    readonly_fields = fields
    extra = 0
    can_delete = False


@admin.register(ImportRun)
class ImportRunAdmin(ReadOnlyAdmin):
    """Runs are made by importing a file: "Add" opens the upload page."""

    list_display = ("id", "file_name", "status", "rows", "accepted", "rejected", "warnings", "started_at", "pages")
    list_filter = ("status",)
    readonly_fields = ("pages",)
    inlines = [ImportRejectInline]

    def has_add_permission(self, request):
        return request.user.has_perm(UPLOAD_PERMISSION)

    def add_view(self, request, form_url="", extra_context=None):
        return redirect(reverse("admin:import-upload", current_app=self.admin_site.name))

    @admin.display(description="progress and rejects")
    def pages(self, run):
        return format_html(
            '<a href="{}">progress</a> · <a href="{}">reject report (CSV)</a>',
            reverse("admin:import-progress", args=[run.pk], current_app=self.admin_site.name),
            reverse("admin:import-rejects", args=[run.pk], current_app=self.admin_site.name),
        )


@admin.register(BlockedIdentifier)
class BlockedIdentifierAdmin(admin.ModelAdmin):
    list_display = ("kind", "value", "reason", "created_at")
    # Whole values only (case ignored): the list holds emails and phone numbers; the reason is free text.
    search_fields = ("=value", "reason")


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Keys are created here or with ``manage.py create_api_key`` (the key is shown once), and revoked here.

    Every write goes through ``users_app.access``, which records it in the audit log. Keys are revoked,
    never deleted, so the log's key ids keep meaning something. Only masking can change afterwards.
    """

    list_display = ("name", "scope", "mask_pii", "prefix", "created_at", "last_used_at", "revoked_at")
    list_filter = ("scope", "mask_pii")
    actions = ["revoke"]
    add_fields = ("name", "scope", "mask_pii")
    fixed_fields = ("name", "scope", "prefix", "created_at", "last_used_at", "revoked_at")

    def get_fields(self, request, obj=None):
        return self.add_fields if obj is None else (*self.fixed_fields, "mask_pii")

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        if obj.revoked_at or obj.scope != ApiKey.Scope.READ:
            return (*self.fixed_fields, "mask_pii")
        return self.fixed_fields

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        actor = request_actor(request)
        if change:
            if "mask_pii" in form.changed_data:
                api_key_set_masking(key=ApiKey.objects.get(pk=obj.pk), mask_pii=obj.mask_pii, actor=actor)
            return
        created, plain_key = api_key_create(name=obj.name, scope=obj.scope, mask_pii=obj.mask_pii, actor=actor)
        # The admin goes on with ``obj`` (its log entry, response_add): make it the saved key.
        obj.pk = created.pk
        obj.refresh_from_db()
        obj._state.adding = False
        obj.plain_key = plain_key

    def response_add(self, request, obj, post_url_continue=None):
        """The new key's only showing (admin pages are never cached)."""
        context = {**self.admin_site.each_context(request), "title": "API key created", "key": obj}
        return TemplateResponse(request, "admin/users_app/apikey/created.html", {**context, "plain_key": obj.plain_key})

    @admin.action(description="Revoke the selected keys", permissions=["change"])
    def revoke(self, request, queryset):
        revoked = api_key_revoke(keys=queryset, actor=request_actor(request))
        self.message_user(request, f"Revoked {revoked} key(s).")


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    """The audit log: viewable by whoever may view it, changeable by nobody (superusers included)."""

    list_display = ("created_at", "actor", "action", "summary")
    list_filter = ("action",)
    search_fields = ("=actor",)
    fields = ("created_at", "actor", "action", "summary", "details")
    readonly_fields = fields
    date_hierarchy = "created_at"
