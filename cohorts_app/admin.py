from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import QueryDict
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html

from analytics_site.csv_export import csv_download
from users_app.admin import ProfileAdmin
from users_app.audit import audit_record, request_actor
from users_app.models import AuditEvent

from .models import MultiDeviceProfile, Segment
from .segments import (
    EXPORT_HEADER,
    filters_query_string,
    profile_export_rows,
    segment_filters_clean,
    segment_profiles,
)


@admin.register(MultiDeviceProfile)
class MultiDeviceProfileAdmin(ProfileAdmin):
    implied_filters = {"multi_device": "true"}


class SegmentForm(forms.ModelForm):
    query = forms.CharField(
        label="Filters",
        required=False,
        widget=forms.TextInput(attrs={"size": 100}),
        help_text=(
            "The profile list's filters as a query string, e.g. "
            "country=India&amp;age_min=25&amp;interests=sports,music. Same names as the API's profile filters."
        ),
    )

    class Meta:
        model = Segment
        fields = ("name", "description")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["query"].initial = filters_query_string(self.instance.filters)

    def clean_query(self):
        try:
            return segment_filters_clean(QueryDict(self.cleaned_data["query"].lstrip("?")))
        except ValidationError as error:
            raise ValidationError(
                [f"{name}: {' '.join(messages)}" for name, messages in error.message_dict.items()]
            ) from None

    def save(self, commit=True):
        self.instance.filters = self.cleaned_data["query"]
        return super().save(commit)


@admin.register(Segment)
class SegmentAdmin(admin.ModelAdmin):
    form = SegmentForm
    list_display = ("name", "filter_summary", "updated_at", "links")
    search_fields = ("name",)
    readonly_fields = ("member_count", "links", "created_by", "created_at", "updated_at")

    def get_fields(self, request, obj=None):
        fields = ["name", "description", "query"]
        return fields + list(self.readonly_fields) if obj else fields

    def get_changeform_initial_data(self, request):
        initial = super().get_changeform_initial_data(request)
        initial["query"] = request.GET.get("query", "")
        return initial

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)

    def get_urls(self):
        export = path(
            "<int:segment_id>/export.csv",
            self.admin_site.admin_view(self.export_view),
            name="cohorts_app_segment_export",
        )
        return [export, *super().get_urls()]

    def export_view(self, request, segment_id):
        """Every member with every identifier, streamed: no row cap, flat memory."""
        segment = get_object_or_404(Segment, pk=segment_id)
        if not self.has_view_permission(request, segment):
            raise PermissionDenied
        rows = profile_export_rows(segment_profiles(segment))
        audit_record(
            actor=request_actor(request),
            action=AuditEvent.Action.EXPORT,
            summary=f"Exported segment '{segment.name}' (every member with every identifier) as CSV",
            details={"segment_id": segment.pk, "filters": segment.filters},
        )
        return csv_download(f"segment-{segment.pk}.csv", EXPORT_HEADER, rows)

    @admin.display(description="filters")
    def filter_summary(self, segment):
        return filters_query_string(segment.filters) or "all profiles"

    @admin.display(description="members now")
    def member_count(self, segment):
        return f"{segment_profiles(segment).count():,}"

    @admin.display(description="open")
    def links(self, segment):
        members = reverse("admin:users_app_profile_changelist") + "?" + filters_query_string(segment.filters)
        export = reverse("admin:cohorts_app_segment_export", args=[segment.pk])
        return format_html(
            '<a href="{}" class="segment-members">Members</a> · <a href="{}" class="segment-export">Export CSV</a>',
            members,
            export,
        )
