"""Cohorts: the multi-device cohort (the seed's ``cohort`` collection) and saved segments.

Both are derived from profiles, never stored apart from them, so they are always current.
"""

from django.conf import settings
from django.db import models

from users_app.models import Profile, ProfileQuerySet


class CohortManager(models.Manager.from_queryset(ProfileQuerySet)):
    def get_queryset(self):
        return super().get_queryset().multi_device()


class MultiDeviceProfile(Profile):
    objects = CohortManager()

    class Meta:
        proxy = True
        verbose_name = "multi-device profile"
        verbose_name_plural = "multi-device cohort"


class Segment(models.Model):
    """A named, saved profile filter: the parameters of ``ProfileFilterSet``, as the API takes them.

    Members are computed when asked for, so a segment always reflects today's profiles.
    """

    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    # Filter name -> value (a list for the interest filters), validated by cohorts_app.segments.
    filters = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
