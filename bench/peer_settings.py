"""The project's settings plus the benchmark peers (django-import-export and its plain table)."""

from analytics_site.settings import *  # noqa: F403
from analytics_site.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "import_export", "bench.peers"]
