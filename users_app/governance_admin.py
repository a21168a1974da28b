"""Identity governance in the admin: the guards, the review queue, the decisions, explain and split.

Every write goes through ``users_app.governance`` (one transaction under the writer lock, written to
the audit log); these pages pick what to decide and say what happened. A decision the service
refuses (``DecisionError``) or cannot take while an import or rebuild runs (``WriterBusy``) is an
error message on the page, never an error page. Deciding needs ``DECIDE_PERMISSION``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Exists, OuterRef
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from .access import DECIDE_PERMISSION
from .audit import request_actor
from .governance import (
    GUARD_FIELDS,
    REASON_LENGTH,
    DecisionError,
    DecisionResult,
    decision_reverse,
    guards_change,
    link_approve,
    link_reject,
    profile_explain,
    profile_split,
)
from .locks import WriterBusy
from .models import (
    HeldLink,
    Identifier,
    IdentifierKind,
    IdentityGuards,
    LinkDecision,
    PendingLink,
    Profile,
)

SPLIT_COOKIES_SHOWN = 200
DECIDE_AT_ONCE = 100  # links or decisions per action: each replays its profiles in its own transaction
GUARDS_HELP = (
    "Each guard is off while empty. A change applies to records ingested from then on; records stored before "
    "keep the guards they met, also when a rebuild or a link decision resolves them again."
)


def can_decide(request) -> bool:
    return request.user.has_perm(DECIDE_PERMISSION)


def profile_url(profile_id: int) -> str:
    return reverse("admin:users_app_profile_change", args=[profile_id])


def record_url(raw_id: int) -> str:
    return reverse("admin:users_app_rawrecord_change", args=[raw_id])


def profile_links(profile_ids: Iterable[int]):
    return format_html_join(", ", '<a href="{}">{}</a>', ((profile_url(pk), pk) for pk in profile_ids))


def _identity(kind: str, value: str):
    return format_html("{}: {}", kind, value)


def _identities(identities: Iterable[tuple[str, str]]):
    return format_html_join(", ", "{}: {}", identities) or "-"


# --- Guards --------------------------------------------------------------------------------------


@admin.register(IdentityGuards)
class IdentityGuardsAdmin(admin.ModelAdmin):
    """The guards in force: the list opens the latest row; saving makes a new one (``guards_change``),
    in force from the next record, so the rows are the guards' history."""

    fieldsets = (
        (
            None,
            {
                "fields": (*GUARD_FIELDS, "review_queue"),
                "description": GUARDS_HELP,
            },
        ),
        ("History", {"fields": ("history",)}),
    )
    readonly_fields = ("review_queue", "history")

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def changelist_view(self, request, extra_context=None):
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        # An empty row is the same as no row (every guard off), so making it changes nothing.
        guards = IdentityGuards.current()
        if guards.pk is None:
            guards = IdentityGuards.objects.create()
        return redirect(
            reverse("admin:users_app_identityguards_change", args=[guards.pk], current_app=self.admin_site.name)
        )

    def save_model(self, request, obj, form, change):
        # Never an update: older records keep the guards they met (see IdentityGuards).
        caps = {name: form.cleaned_data[name] for name in GUARD_FIELDS}
        obj.pk = guards_change(actor=request_actor(request), **caps).pk

    @admin.display(description="changes")
    def history(self, guards):
        rows = IdentityGuards.objects.order_by("-effective_from_record", "-id")[:20]
        return format_html(
            "<table><tr><th>from record</th><th>changed</th><th>by</th>{}</tr>{}</table>",
            format_html_join("", "<th>{}</th>", ((name.replace("_", " "),) for name in GUARD_FIELDS)),
            format_html_join(
                "",
                "<tr><td>{}</td><td>{}</td><td>{}</td>{}</tr>",
                (
                    (
                        row.effective_from_record,
                        f"{row.changed_at:%Y-%m-%d %H:%M}",
                        row.changed_by,
                        format_html_join("", "<td>{}</td>", ((getattr(row, name) or "off",) for name in GUARD_FIELDS)),
                    )
                    for row in rows
                ),
            ),
        )

    def response_change(self, request, obj):
        response = super().response_change(request, obj)
        self.message_user(request, GUARDS_HELP, messages.INFO)
        return response

    @admin.display(description="review queue")
    def review_queue(self, guards):
        pending = HeldLink.objects.pending().count()
        return format_html(
            '<a href="{}">{} link{} held for review</a>',
            reverse("admin:users_app_pendinglink_changelist", current_app=self.admin_site.name),
            pending,
            "" if pending == 1 else "s",
        )


# --- Review queue and decisions ------------------------------------------------------------------


class GovernanceReadOnlyAdmin(admin.ModelAdmin):
    """Rows made by the resolver and the governance service only; deciding is an action."""

    show_full_result_count = False
    list_per_page = 50

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_view_permission(self, request, obj=None):
        return super().has_view_permission(request, obj) or can_decide(request)

    def has_decide_permission(self, request):
        return can_decide(request)

    def picked(self, request, queryset, columns: tuple[str, ...]) -> list[tuple] | None:
        """What the action was asked about (``columns`` of each row), or None, said why, when too many."""
        rows = list(queryset.values_list(*columns)[: DECIDE_AT_ONCE + 1])
        if len(rows) > DECIDE_AT_ONCE:
            self.message_user(request, f"Select at most {DECIDE_AT_ONCE} at once.", messages.ERROR)
            return None
        return rows

    def report(self, request, verb: str, noun: str, done: list[DecisionResult], refused: list[str], busy: str = ""):
        if done:
            profiles = sorted({pk for result in done for pk in result.profiles})
            self.message_user(
                request,
                format_html(
                    "{} {} {}{}; the records are now in profile{} {}.",
                    verb,
                    len(done),
                    noun,
                    "" if len(done) == 1 else "s",
                    "" if len(profiles) == 1 else "s",
                    profile_links(profiles),
                ),
                messages.SUCCESS,
            )
        if refused:
            self.message_user(request, f"Not done: {'; '.join(refused)}", messages.ERROR)
        if busy:
            self.message_user(request, busy, messages.ERROR)


class PendingReasonFilter(admin.SimpleListFilter):
    title = "reason"
    parameter_name = "reason"

    def lookups(self, request, model_admin):
        return [(reason.value, reason.label) for reason in HeldLink.Reason if reason != HeldLink.Reason.DETACHED]

    def queryset(self, request, queryset):
        return queryset.filter(reason=self.value()) if self.value() else queryset


@admin.register(PendingLink)
class PendingLinkAdmin(GovernanceReadOnlyAdmin):
    """The review queue: links a guard held, oldest first, to approve (merge now) or reject (keep apart)."""

    list_display = ("identifier", "reason", "detail", "held_record", "record_profile", "target_profile", "held_at")
    list_filter = (PendingReasonFilter, "kind")
    search_fields = ("=value",)
    ordering = ("held_at", "id")
    fields = list_display
    readonly_fields = fields
    actions = ["approve_selected", "reject_selected"]
    change_form_template = "admin/users_app/pendinglink/change_form.html"

    def get_queryset(self, request):
        return super().get_queryset(request).with_target().select_related("raw_record")

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {"can_decide": can_decide(request), **(extra_context or {})}
        return super().change_view(request, object_id, form_url, extra_context)

    @admin.display(description="identifier", ordering="value")
    def identifier(self, held):
        return _identity(held.kind, held.value)

    @admin.display(description="held record", ordering="raw_record")
    def held_record(self, held):
        return format_html('<a href="{}">#{}</a>', record_url(held.raw_record_id), held.raw_record_id)

    @admin.display(description="record's profile")
    def record_profile(self, held):
        pid = held.raw_record.profile_id
        return format_html('<a href="{}">{}</a>', profile_url(pid), pid) if pid else "-"

    @admin.display(description="would join profile")
    def target_profile(self, held):
        pid = held.target_profile_id
        return format_html('<a href="{}">{}</a>', profile_url(pid), pid) if pid else "-"

    @admin.action(description="Approve: merge now", permissions=["decide"])
    def approve_selected(self, request, queryset):
        self._decide_each(request, queryset, link_approve, "Approved")

    @admin.action(description="Reject: keep apart", permissions=["decide"])
    def reject_selected(self, request, queryset):
        self._decide_each(request, queryset, link_reject, "Rejected")

    def _decide_each(self, request, queryset, decide, verb: str):
        # Each decision replays the profiles it touches and rebuilds their held links (new rows),
        # so every selected link is looked up again, by what it is, just before its decision.
        selected = self.picked(request, queryset.order_by("held_at", "id"), ("raw_record_id", "kind", "value"))
        if selected is None:
            return
        if not selected:  # a page shown before someone else decided them
            self.message_user(request, "The selected links are no longer held for review.", messages.WARNING)
            return
        actor = request_actor(request)
        done, refused, busy = [], [], ""
        for raw_id, kind, value in selected:
            label = f"record #{raw_id} through {kind} {value}"
            held = (
                HeldLink.objects.pending()
                .select_related("raw_record")
                .filter(raw_record_id=raw_id, kind=kind, value=value)
                .first()
            )
            if held is None:
                refused.append(f"{label} is no longer held for review")
                continue
            try:
                done.append(decide(held=held, actor=actor))
            except DecisionError as exc:
                refused.append(f"{label}: {exc}")
            except WriterBusy as exc:
                busy = f"{exc} {len(selected) - len(done) - len(refused)} link(s) left undecided."
                break
        self.report(request, verb, "held link", done, refused, busy)


class InForceFilter(admin.SimpleListFilter):
    title = "in force"
    parameter_name = "active"

    def lookups(self, request, model_admin):
        return [("yes", "In force"), ("no", "Reversed")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(reversed_at__isnull=True)
        if self.value() == "no":
            return queryset.filter(reversed_at__isnull=False)
        return queryset


@admin.register(LinkDecision)
class LinkDecisionAdmin(GovernanceReadOnlyAdmin):
    """The ledger of decisions ``rebuild_profiles`` replays; reversing one keeps its row as history."""

    list_display = (
        "id", "kind", "identifier", "decided_on", "reason", "actor", "created_at", "reversed_at", "reversed_by",
    )  # fmt: skip
    list_filter = ("kind", InForceFilter)
    search_fields = ("=identifier_value", "=actor")
    fields = (
        "kind", "identifier", "decided_on", "raw_record", "anchors", "reason", "actor", "created_at",
        "reversed_at", "reversed_by",
    )  # fmt: skip
    readonly_fields = fields
    actions = ["reverse_selected"]

    def get_queryset(self, request):
        # Whether the profile decided on still exists (a split or merge may have replaced it).
        exists = Exists(Profile.objects.filter(pk=OuterRef("profile_id")))
        return super().get_queryset(request).annotate(profile_exists=exists)

    @admin.display(description="identifier", ordering="identifier_value")
    def identifier(self, decision):
        return _identity(decision.identifier_kind, decision.identifier_value)

    @admin.display(description="profile decided on", ordering="profile_id")
    def decided_on(self, decision):
        if decision.profile_id is None:
            return "-"
        if decision.profile_exists:
            return format_html('<a href="{}">{}</a>', profile_url(decision.profile_id), decision.profile_id)
        return f"{decision.profile_id} (no longer a profile)"

    @admin.action(description="Reverse (re-link / undo)", permissions=["decide"])
    def reverse_selected(self, request, queryset):
        selected = self.picked(request, queryset.order_by("id"), ("id",))
        if selected is None:
            return
        actor = request_actor(request)
        done, refused, busy = [], [], ""
        for (pk,) in selected:
            decision = LinkDecision.objects.select_related("raw_record").filter(pk=pk).first()
            if decision is None:  # its record was erased meanwhile
                refused.append(f"decision {pk} is gone")
                continue
            try:
                done.append(decision_reverse(decision=decision, actor=actor))
            except DecisionError as exc:
                refused.append(str(exc))
            except WriterBusy as exc:
                busy = f"{exc} {len(selected) - len(done) - len(refused)} decision(s) left as they were."
                break
        self.report(request, "Reversed", "decision", done, refused, busy)


# --- Explain -------------------------------------------------------------------------------------


def _merged(merges: list[dict]):
    return (
        format_html_join(", ", "{} into {} via {}", ((m["absorbed"], m["into"], _identity(*m["via"])) for m in merges))
        or "-"
    )


def _held(links: list[dict]):
    def where(link: dict):
        if link["held_link"]:
            url = reverse("admin:users_app_pendinglink_change", args=[link["held_link"]])
            return format_html(' (<a href="{}">review</a>)', url)
        if link["decision"]:
            url = reverse("admin:users_app_linkdecision_change", args=[link["decision"]])
            return format_html(' (<a href="{}">decision {}</a>)', url, link["decision"])
        return ""

    return (
        format_html_join(
            "; ",
            "{} — {}: {}{}",
            (
                (_identity(*link["identifier"]), HeldLink.Reason(link["reason"]).label, link["detail"], where(link))
                for link in links
            ),
        )
        or "-"
    )


def explain_table(profile: Profile):
    """``governance.profile_explain`` as HTML: each record, what it linked through, and the decisions."""
    explanation = profile_explain(profile)
    body = format_html_join(
        "",
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        (
            (
                format_html('<a href="{}">#{}</a>', record_url(step.record), step.record),
                step.created_at,
                step.outcome or "-",
                _identities(step.joined_via),
                _identities(step.added),
                _merged(step.merged),
                _held(step.held),
            )
            for step in explanation.steps
        ),
    )
    more = ""
    if explanation.truncated:
        more = format_html("<p>The first {} records only.</p>", explanation.records)
    decisions = ""
    if explanation.decisions:
        rows = format_html_join(
            "",
            '<tr><td><a href="{}">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>',
            (
                (
                    reverse("admin:users_app_linkdecision_change", args=[d.pk]),
                    d.pk,
                    d.get_kind_display(),
                    _identity(d.identifier_kind, d.identifier_value),
                    d.actor,
                    d.created_at,
                    "in force" if d.active else f"reversed {d.reversed_at:%Y-%m-%d} by {d.reversed_by}",
                )
                for d in explanation.decisions
            ),
        )
        decisions = format_html(
            '<table id="explain-decisions"><caption>Decisions that shaped it</caption><tr><th>decision</th>'
            "<th>kind</th><th>identifier</th><th>by</th><th>when</th><th>status</th></tr>{}</table>",
            rows,
        )
    return format_html(
        '<table id="explain-links"><tr><th>record</th><th>created_at</th><th>outcome</th><th>joined via</th>'
        "<th>brought</th><th>merged</th><th>held / detached</th></tr>{}</table>{}{}",
        body,
        more,
        decisions,
    )


# --- Split ---------------------------------------------------------------------------------------


def _identifier_choice(choice: str) -> tuple[str, str] | None:
    """``kind:value`` (the split form's radio value) as (kind, value); None when it names no kind."""
    kind, sep, value = choice.partition(":")
    if not sep or kind not in IdentifierKind.values or not value:
        return None
    return kind, value


def _split_done(request, profile: Profile, kind: str, value: str, result: DecisionResult):
    """Name the resulting profiles (with their emails, or cookies) and show them."""
    labels = defaultdict(list)
    rows = Identifier.objects.filter(profile_id__in=result.profiles).order_by("kind", "value")
    for pid, ident_kind, ident_value in rows.values_list("profile_id", "kind", "value"):
        labels[pid].append((ident_kind, ident_value))
    # A person is easiest told apart by their emails and phones; cookies only when they have none.
    named = format_html_join(
        ", ",
        '<a href="{}">{}</a> ({})',
        (
            (profile_url(pid), pid, _identities([i for i in labels[pid] if i[0] != "cookie"] or labels[pid]))
            for pid in result.profiles
        ),
    )
    decision_url = reverse("admin:users_app_linkdecision_change", args=[result.decision.pk])
    messages.success(
        request,
        format_html(
            "Split {} from profile {}: its records now form {} profile{}: {}. To undo it, reverse "
            '<a href="{}">decision {}</a>.',
            _identity(kind, value),
            profile.pk,
            len(result.profiles),
            "" if len(result.profiles) == 1 else "s",
            named,
            decision_url,
            result.decision.pk,
        ),
    )
    if len(result.profiles) == 1:
        return redirect(profile_url(result.profiles[0]))
    ids = ",".join(map(str, result.profiles))
    return redirect(f"{reverse('admin:users_app_profile_changelist')}?id__in={ids}")


def _split_choices(profile: Profile, selected: str) -> tuple[list[dict], int]:
    """The profile's emails and phones (what usually glues strangers), then its first cookies.

    A profile glued by a shared address can hold thousands of cookies; listing them all would bury
    the emails. The cookie asked for in the URL is listed whatever its rank. Also returns how many
    cookies are left out.
    """
    columns = ("kind", "value", "first_record_id")
    rows = list(profile.identifiers.exclude(kind=IdentifierKind.COOKIE).order_by("kind", "value").values(*columns))
    cookies = profile.identifiers.filter(kind=IdentifierKind.COOKIE).order_by("value")
    rows += cookies.values(*columns)[:SPLIT_COOKIES_SHOWN]
    asked = _identifier_choice(selected)
    if asked and asked[0] == IdentifierKind.COOKIE and all((r["kind"], r["value"]) != asked for r in rows):
        rows += cookies.filter(value=asked[1]).values(*columns)
    for row in rows:
        row["choice"] = f"{row['kind']}:{row['value']}"
    listed = sum(1 for row in rows if row["kind"] == IdentifierKind.COOKIE)
    return rows, max(cookies.count() - listed, 0)


def profile_split_view(model_admin, request, profile_id: int):
    """GET: the profile's identifiers to choose from; POST: ``governance.profile_split``, then the result."""
    if not can_decide(request):
        raise PermissionDenied
    profile = Profile.objects.filter(pk=profile_id).first()
    if profile is None:
        messages.warning(
            request, f"Profile {profile_id} no longer exists: a split or merge has changed it. Find the person again."
        )
        return redirect("admin:users_app_profile_changelist")
    selected = request.GET.get("identifier", "")
    reason = ""
    if request.method == "POST":
        selected = request.POST.get("identifier", "")
        reason = request.POST.get("reason", "").strip()
        chosen = _identifier_choice(selected)
        if chosen is None:
            messages.error(request, "Choose one of the profile's identifiers to split off.")
        else:
            kind, value = chosen
            actor = request_actor(request)
            try:
                result = profile_split(profile=profile, kind=kind, value=value, actor=actor, reason=reason)
            except (DecisionError, WriterBusy) as exc:
                messages.error(request, f"Nothing split: {exc}")
            else:
                return _split_done(request, profile, kind, value, result)
    identifiers, not_shown = _split_choices(profile, selected)
    context = {
        **model_admin.admin_site.each_context(request),
        "title": f"Split profile {profile.pk}",
        "opts": model_admin.model._meta,
        "original": profile,
        "identifiers": identifiers,
        "cookies_not_shown": not_shown,
        "selected": selected,
        "reason": reason,
        "reason_max_length": REASON_LENGTH,
    }
    return TemplateResponse(request, "admin/users_app/profile/split.html", context)
