"""The admin site: Django's, plus the marketers' pages (dashboard, retention, identity clusters, CSV upload).

Each page lives with its feature and hands its URLs over through ``admin_urls(site)``; they are all
wrapped in ``site.admin_view``, so they need a staff login like every admin page.
"""

from django.contrib import admin
from django.contrib.admin.apps import AdminConfig


class AnalyticsAdminSite(admin.AdminSite):
    site_header = "Audience analytics"
    site_title = "Audience analytics"
    index_title = "Audience"
    index_template = "admin/analytics_index.html"

    def get_urls(self):
        from cohorts_app import retention_views, stats_views
        from users_app import clusters_views, upload_views

        pages = []
        for module in (stats_views, retention_views, clusters_views, upload_views):
            pages += module.admin_urls(self)
        return pages + super().get_urls()


class AnalyticsAdminConfig(AdminConfig):
    default_site = "analytics_site.admin_site.AnalyticsAdminSite"
