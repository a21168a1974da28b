"""The profile list's sidebar filters, each one a thin face of ``ProfileFilterSet``.

The URL parameters are the FilterSet's own (``?country=India&age_min=25&interests=sports``), so a
filtered admin list, the API's ``/api/v1/profiles/?...`` and a saved segment with the same
parameters select the same people. Several interests travel comma-separated in one parameter,
because the admin keeps one value per parameter when it builds its links.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters

from .filtersets import ProfileFilterSet
from .selectors import interest_names, trait_values


class ProfileFilterSetFilter(admin.ListFilter):
    """Takes its parameters from the query string and filters through ``ProfileFilterSet``."""

    parameter_names: tuple[str, ...] = ()

    def __init__(self, request, params, model, model_admin):
        super().__init__(request, params, model, model_admin)
        for name in self.parameter_names:
            if name in params:
                value = params.pop(name)[-1]
                if value.strip():
                    self.used_parameters[name] = value.strip()

    def has_output(self):
        return True

    def expected_parameters(self):
        return list(self.parameter_names)

    def queryset(self, request, queryset):
        if not self.used_parameters:
            return queryset
        filterset = ProfileFilterSet(data=self.used_parameters, queryset=queryset)
        if not filterset.is_valid():
            for name, errors in filterset.errors.items():
                messages.error(request, f"Filter {name}={self.used_parameters.get(name)!r}: {' '.join(errors)}")
            raise IncorrectLookupParameters(filterset.errors)
        return filterset.qs


class ValueChoicesFilter(ProfileFilterSetFilter):
    """One parameter; each value in the data is a link."""

    def values(self) -> list[tuple[str, str]]:
        """(parameter value, label) pairs."""
        raise NotImplementedError

    def choices(self, changelist):
        (name,) = self.parameter_names
        current = self.used_parameters.get(name, "").casefold()
        yield {
            "selected": not current,
            "query_string": changelist.get_query_string(remove=[name]),
            "display": "All",
        }
        for value, label in self.values():
            yield {
                "selected": current == value.casefold(),
                "query_string": changelist.get_query_string({name: value}),
                "display": label,
            }


def trait_filter(field: str, label: str, parameter: str | None = None) -> type[ValueChoicesFilter]:
    """A filter listing the values a trait takes (cached for a few minutes: see ``trait_values``)."""

    def values(self):
        return [(value, value) for value in trait_values(field)]

    return type(
        f"{field.title()}Filter",
        (ValueChoicesFilter,),
        {"title": label, "parameter_names": (parameter or field,), "values": values},
    )


class MultiDeviceFilter(ValueChoicesFilter):
    title = "multi-device"
    parameter_names = ("multi_device",)

    def values(self):
        return [("true", "Yes: two or more cookies"), ("false", "No: one cookie")]


class InterestsFilter(ProfileFilterSetFilter):
    """Interests as toggles: a click adds the interest to the list or takes it out."""

    def choices(self, changelist):
        (name,) = self.parameter_names
        chosen = [item.strip() for item in self.used_parameters.get(name, "").split(",") if item.strip()]
        chosen_keys = {item.casefold() for item in chosen}
        yield {
            "selected": not chosen,
            "query_string": changelist.get_query_string(remove=[name]),
            "display": "All",
        }
        for interest in interest_names():
            selected = interest.casefold() in chosen_keys
            toggled = [c for c in chosen if c.casefold() != interest.casefold()] if selected else [*chosen, interest]
            query = changelist.get_query_string({name: ",".join(toggled)} if toggled else None, remove=[name])
            yield {"selected": selected, "query_string": query, "display": interest}


class InterestsAnyFilter(InterestsFilter):
    title = "interests: any of"
    parameter_names = ("interests",)


class InterestsAllFilter(InterestsFilter):
    title = "interests: all of"
    parameter_names = ("interests_all",)


class InputFilter(ProfileFilterSetFilter):
    """A small GET form (number, date or text inputs) that keeps the list's other parameters."""

    template = "admin/users_app/input_filter.html"
    input_type = "text"
    labels: tuple[str, ...] = ()

    def suggestions(self) -> list[str]:
        return []

    def choices(self, changelist):
        yield {
            "inputs": [
                {"name": name, "label": label, "value": self.used_parameters.get(name, "")}
                for name, label in zip(self.parameter_names, self.labels, strict=True)
            ],
            # The list's other parameters (filters, search, ordering; not the page) ride along.
            "hidden": [(key, value) for key, value in changelist.params.items() if key not in self.parameter_names],
            "clear_query_string": changelist.get_query_string(remove=list(self.parameter_names))
            if self.used_parameters
            else "",
            "suggestions": self.suggestions(),
        }


class AgeRangeFilter(InputFilter):
    title = "age range"
    parameter_names = ("age_min", "age_max")
    labels = ("From", "to")
    input_type = "number"


class FirstSeenFilter(InputFilter):
    title = "first seen"
    parameter_names = ("first_seen_after", "first_seen_before")
    labels = ("On or after", "before")
    input_type = "date"


class StateFilter(InputFilter):
    title = "state"
    parameter_names = ("state",)
    labels = ("State",)

    def suggestions(self):
        return trait_values("state")


PROFILE_LIST_FILTERS = (
    trait_filter("country", "country"),
    StateFilter,
    trait_filter("gender", "gender"),
    AgeRangeFilter,
    trait_filter("income", "income bracket"),
    trait_filter("education", "education"),
    InterestsAnyFilter,
    InterestsAllFilter,
    MultiDeviceFilter,
    FirstSeenFilter,
)
