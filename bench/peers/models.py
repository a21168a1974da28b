"""A plain table with the seed file's columns, for django-import-export to load (a benchmark peer only)."""

from django.db import models


class PlainRecord(models.Model):
    cookie = models.CharField(max_length=255, blank=True)
    email = models.CharField(max_length=255, blank=True)
    phone_number = models.CharField(max_length=64, blank=True)
    country = models.CharField(max_length=100, blank=True)
    state = models.CharField(max_length=255, blank=True)
    city = models.CharField(max_length=255, blank=True)
    age = models.CharField(max_length=16, blank=True)
    gender = models.CharField(max_length=32, blank=True)
    income = models.CharField(max_length=255, blank=True)
    education = models.CharField(max_length=255, blank=True)
    interests = models.TextField(blank=True)
    created_at = models.CharField(max_length=32, blank=True)

    def __str__(self) -> str:
        return self.email or self.cookie
