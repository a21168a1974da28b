"""Admin for marketers: browse profiles and the raw log; edit only the block list.

Profiles, identifiers and the ledger are derived from raw records by the resolver, so they are
read-only here: editing them by hand would break the contract that a rebuild reproduces them.
"""

from django.contrib import admin
from django.utils import timezone

from .models import ApiKey, BlockedIdentifier, Identifier, ImportReject, ImportRun, Profile, ProfileMerge, RawRecord


class ReadOnlyAdmin(admin.ModelAdmin):
    show_full_result_count = False  # no second COUNT(*) over millions of rows per page

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


@admin.register(Profile)
class ProfileAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "email",
        "cookie_count",
        "country",
        "state",
        "age",
        "gender",
        "income",
        "first_seen",
        "last_seen",
    )
    list_filter = ("country", "gender", "education", "income")
    search_fields = ("=identifiers__value",)
    inlines = [IdentifierInline]


@admin.register(RawRecord)
class RawRecordAdmin(ReadOnlyAdmin):
    list_display = ("id", "source", "import_run", "line_number", "created_at", "received_at", "profile")
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
    list_display = ("id", "file_name", "status", "rows", "accepted", "rejected", "warnings", "started_at")
    list_filter = ("status",)
    inlines = [ImportRejectInline]


@admin.register(BlockedIdentifier)
class BlockedIdentifierAdmin(admin.ModelAdmin):
    list_display = ("kind", "value", "reason", "created_at")
    search_fields = ("value",)


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Keys are created with ``manage.py create_api_key`` (the key is shown once); here they are revoked."""

    list_display = ("name", "scope", "prefix", "created_at", "last_used_at", "revoked_at")
    list_filter = ("scope",)
    readonly_fields = ("name", "scope", "prefix", "key_hash", "created_at", "last_used_at", "revoked_at")
    actions = ["revoke"]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Revoke the selected keys", permissions=["change"])
    def revoke(self, request, queryset):
        revoked = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        self.message_user(request, f"Revoked {revoked} key(s).")
