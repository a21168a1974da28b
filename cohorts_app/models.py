"""The multi-device cohort: people seen on two or more cookies (the seed's ``cohort`` collection).

Derived from profiles, never stored apart from them, so it is always current.
"""

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
