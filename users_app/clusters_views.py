"""The identity clusters admin page, and its Block button.

The page shows how many cookies profiles gather, the profiles with the most cookies and the emails
and phones that glued them; the button puts one of those values on the block list through
``clusters.identifier_block``, and each cluster's "Split…" link opens the profile's split page
(``governance_admin.profile_split_view``). Both views are wrapped in ``site.admin_view`` (staff login, CSRF).
"""

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import redirect
from django.urls import path
from django.views.generic import TemplateView, View

from .clusters import cookies_per_profile_histogram, identifier_block, largest_clusters, shared_identifiers
from .governance_admin import can_decide

CLUSTERS_SHOWN = 50
BLOCK_PERMISSION = "users_app.add_blockedidentifier"
APPLIES_TO_EXISTING = "Run `manage.py rebuild_profiles` to apply it to existing profiles."


class IdentityClustersView(TemplateView):
    template_name = "admin/identity_clusters.html"
    site = None

    def get_context_data(self, **kwargs):
        clusters = largest_clusters(CLUSTERS_SHOWN)
        histogram = cookies_per_profile_histogram()
        return {
            **super().get_context_data(**kwargs),
            **self.site.each_context(self.request),
            "title": "Identity clusters",
            "histogram": {"labels": [label for label, _ in histogram], "profiles": [n for _, n in histogram]},
            "clusters": clusters,
            "shared": shared_identifiers(CLUSTERS_SHOWN, clusters=clusters),
            # Identifiers of smaller profiles than these join at most this many cookies each.
            "shared_bound": clusters[-1].cookie_count if len(clusters) == CLUSTERS_SHOWN else None,
            "can_block": self.request.user.has_perm(BLOCK_PERMISSION),
            "can_split": can_decide(self.request),
            "match_phone": settings.IDENTITY_MATCH_PHONE,
        }


class IdentityBlockView(View):
    http_method_names = ["post"]
    site = None

    def post(self, request):
        if not request.user.has_perm(BLOCK_PERMISSION):
            raise PermissionDenied
        try:
            outcome = identifier_block(
                kind=request.POST.get("kind", ""),
                value=request.POST.get("value", ""),
                reason=request.POST.get("reason", ""),
                user=request.user,
            )
        except ValidationError as exc:
            problems = "; ".join(f"{name}: {' '.join(errors)}" for name, errors in exc.message_dict.items())
            messages.error(request, f"Nothing blocked ({problems}).")
        else:
            if outcome.created:
                messages.success(
                    request,
                    f"Blocked {outcome.kind} {outcome.value}: new records will no longer link through it. "
                    + APPLIES_TO_EXISTING,
                )
            else:
                messages.info(
                    request,
                    f"{outcome.kind.capitalize()} {outcome.value} was already blocked: new records do not link "
                    "through it. " + APPLIES_TO_EXISTING,
                )
        return redirect(f"{self.site.name}:identity-clusters")


def admin_urls(site):
    return [
        path(
            "identity-clusters/",
            site.admin_view(IdentityClustersView.as_view(site=site)),
            name="identity-clusters",
        ),
        path(
            "identity-clusters/block/",
            site.admin_view(IdentityBlockView.as_view(site=site)),
            name="identity-clusters-block",
        ),
    ]
