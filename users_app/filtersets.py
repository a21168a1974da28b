"""The one FilterSet for profiles: the API's lists, the seed's cohort route and saved segments.

Values are normalized the way records are (``INDIA`` = ``India``, ``UK`` = ``United Kingdom``,
``m`` = ``Male``); text matches ignore case. Identifier filters need the exact value: partial
matches on personal data would let a client enumerate people.
"""

import datetime as dt

from django import forms
from django.core.validators import ProhibitNullCharactersValidator
from django.db.models import Exists, OuterRef, Q
from django_filters import rest_framework as filters
from django_filters.fields import IsoDateTimeField
from django_filters.widgets import QueryArrayWidget
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from .models import Identifier, IdentifierKind, Interest, Profile, ProfileInterest
from .normalize import FieldWarning, normalize_country, normalize_gender


class ListField(forms.Field):
    """Several values, given repeated (``?interests=a&interests=b``) or comma-separated."""

    widget = QueryArrayWidget
    default_validators = [ProhibitNullCharactersValidator()]

    def run_validators(self, value):
        for item in value:
            super().run_validators(item)

    def to_python(self, value):
        if not value:
            return []
        items = value if isinstance(value, list) else [value]
        return [part.strip() for item in items for part in str(item).split(",") if part.strip()]


# Items may be empty: a filter form sends an empty field, meaning no filter.
@extend_schema_field(serializers.ListField(child=serializers.CharField(allow_blank=True)))
class ListFilter(filters.Filter):
    field_class = ListField


class StrictBooleanField(forms.Field):
    """true/false (also 1/0, yes/no); empty means no filter; anything else is an error, not ignored."""

    VALUES = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}

    def to_python(self, value):
        if value in (None, ""):
            return None
        try:
            return self.VALUES[str(value).lower()]
        except KeyError:
            raise forms.ValidationError("Must be true or false.") from None


@extend_schema_field(serializers.BooleanField())
class StrictBooleanFilter(filters.Filter):
    field_class = StrictBooleanField


class UtcDateTimeField(IsoDateTimeField):
    """ISO 8601 with any offset Python reads, turned into UTC (PostgreSQL refuses offsets past 15:59)."""

    def to_python(self, value):
        value = super().to_python(value)
        try:
            return value.astimezone(dt.UTC) if value else value
        except OverflowError:
            raise forms.ValidationError("Outside the years 1 to 9999 in UTC.") from None


class UtcDateTimeFilter(filters.IsoDateTimeFilter):
    field_class = UtcDateTimeField


class IntegerFilter(filters.NumberFilter):
    field_class = forms.IntegerField


def _normalized(normalizer, value: str) -> str:
    try:
        return normalizer(value) or value
    except FieldWarning:
        return value.strip()


def _has_interest(interest_ids: list[int]):
    # Interest ids, not keys: the check is then one probe of the (profile, interest) index, with no join,
    # and PostgreSQL estimates it well enough to pick a hashed semi-join over a million profiles.
    return Exists(ProfileInterest.objects.filter(profile=OuterRef("pk"), interest_id__in=interest_ids))


def _interest_ids(values: list[str]) -> dict[str, int]:
    keys = {v.casefold() for v in values}
    return dict(Interest.objects.filter(key__in=keys).values_list("key", "id")) if keys else {}


def _has_identifier(kind: str, value: str):
    return Exists(Identifier.objects.filter(profile=OuterRef("pk"), kind=kind, value=value))


class ProfileFilterSet(filters.FilterSet):
    cookie = filters.CharFilter(method="filter_cookie", help_text="Exact cookie.")
    email = filters.CharFilter(method="filter_email", help_text="Exact email (case and spaces ignored).")
    country = filters.CharFilter(method="filter_country", help_text="Country name, code or alias.")
    state = filters.CharFilter(field_name="state", lookup_expr="iexact")
    city = filters.CharFilter(field_name="city", lookup_expr="iexact")
    age_min = IntegerFilter(field_name="age", lookup_expr="gte")
    age_max = IntegerFilter(field_name="age", lookup_expr="lte")
    gender = filters.CharFilter(method="filter_gender")
    income = filters.CharFilter(field_name="income", lookup_expr="iexact", help_text="Income bracket text.")
    income_min = IntegerFilter(method="filter_income_min", help_text="Income range reaching this amount.")
    income_max = IntegerFilter(method="filter_income_max", help_text="Income range starting at or below.")
    education = filters.CharFilter(field_name="education", lookup_expr="iexact")
    interests = ListFilter(method="filter_interests_any", help_text="Any of these interests.")
    interests_all = ListFilter(method="filter_interests_all", help_text="All of these interests.")
    multi_device = StrictBooleanFilter(method="filter_multi_device", help_text="Seen on two or more cookies.")
    first_seen_after = UtcDateTimeFilter(field_name="first_seen", lookup_expr="gte")
    first_seen_before = UtcDateTimeFilter(field_name="first_seen", lookup_expr="lt")

    class Meta:
        model = Profile
        fields = []

    def filter_cookie(self, queryset, name, value):
        return queryset.filter(_has_identifier(IdentifierKind.COOKIE, value.strip()))

    def filter_email(self, queryset, name, value):
        return queryset.filter(_has_identifier(IdentifierKind.EMAIL, value.strip().lower()))

    def filter_country(self, queryset, name, value):
        try:
            # Stored countries are canonical names, so an exact match finds them (and uses the index).
            return queryset.filter(country=normalize_country(value))
        except FieldWarning:
            return queryset.filter(country__iexact=value.strip())

    def filter_gender(self, queryset, name, value):
        return queryset.filter(gender__iexact=_normalized(normalize_gender, value))

    def filter_income_min(self, queryset, name, value):
        return queryset.filter(Q(income_max__gte=value) | Q(income_max__isnull=True, income_min__isnull=False))

    def filter_income_max(self, queryset, name, value):
        return queryset.filter(income_min__lte=value)

    def filter_interests_any(self, queryset, name, value):
        if not value:
            return queryset
        ids = _interest_ids(value)
        return queryset.filter(_has_interest(list(ids.values()))) if ids else queryset.none()

    def filter_interests_all(self, queryset, name, value):
        ids = _interest_ids(value)
        if len(ids) < len({v.casefold() for v in value}):
            return queryset.none()  # an interest nobody has
        for interest_id in ids.values():
            queryset = queryset.filter(_has_interest([interest_id]))
        return queryset

    def filter_multi_device(self, queryset, name, value):
        if value is None:
            return queryset
        return queryset.multi_device() if value else queryset.filter(cookie_count__lt=2)
