"""Property: whatever the guards (and their changes) and the order of records, approvals,
rejections, splits and re-links, ``rebuild_profiles`` reproduces the state from the raw records
plus the decisions."""

import datetime as dt

import pytest
from django.db import transaction
from django.test import override_settings
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.builders import ingest_batch
from users_app.governance import (
    DecisionError,
    decision_reverse,
    guards_change,
    link_approve,
    link_reject,
    profile_split,
)
from users_app.ingestion import profiles_rebuild
from users_app.models import (
    HeldLink,
    Identifier,
    IdentityGuards,
    LinkDecision,
    Profile,
    ProfileInterest,
    ProfileMerge,
    RawRecord,
)

pytestmark = pytest.mark.django_db

START = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
ACTOR = "user:hypothesis"

record_values = st.fixed_dictionaries(
    {
        "cookie": st.sampled_from(["c1", "c2", "c3", "c4", "c5", "c6", ""]),
        "email": st.sampled_from(["a@x.com", "b@x.com", "c@x.com", "info@x.com", "INFO@x.com", ""]),
        "phone_number": st.sampled_from(["", "+14155550100", "+14155550101"]),
        "city": st.sampled_from(["", "Austin", "Boston", "Chicago"]),
        "age": st.sampled_from(["", "30", "45"]),
        "interests": st.lists(st.sampled_from(["Tech", "Golf", "Travel"]), max_size=2).map("|".join),
        "minute": st.integers(0, 100_000),
    }
)
ingest_step = st.tuples(st.just("ingest"), st.lists(record_values, min_size=1, max_size=6))
steps = st.lists(
    st.one_of(
        ingest_step,
        st.tuples(st.just("approve"), st.integers(0, 50)),
        st.tuples(st.just("reject"), st.integers(0, 50)),
        st.tuples(st.just("split"), st.integers(0, 50), st.integers(0, 50)),
        st.tuples(st.just("reverse"), st.integers(0, 50)),
        st.tuples(st.just("guards"), st.deferred(lambda: guard_settings)),
    ),
    min_size=2,
    max_size=14,
)
guard_settings = st.fixed_dictionaries(
    {
        "max_cookies_per_email": st.sampled_from([None, 1, 2, 2, 3]),
        "max_cookies_per_phone": st.sampled_from([None, 1, 2]),
        "max_cookies_to_merge": st.sampled_from([None, None, 1, 2]),
    }
)


def as_record(values: dict) -> dict:
    values = dict(values)
    minute = values.pop("minute")
    return {**values, "created_at": (START + dt.timedelta(minutes=minute)).isoformat()}


def pick(queryset, index: int):
    items = list(queryset.order_by("pk"))
    return items[index % len(items)] if items else None


def run_step(step) -> None:
    kind, *args = step
    if kind == "ingest":
        ingest_batch([as_record(v) for v in args[0]])
        return
    if kind == "guards":
        guards_change(actor=ACTOR, **args[0])
        return
    try:
        if kind in ("approve", "reject") and (held := pick(HeldLink.objects.pending(), args[0])):
            (link_approve if kind == "approve" else link_reject)(held=held, actor=ACTOR)
        elif kind == "split" and (profile := pick(Profile.objects.all(), args[0])):
            ident = pick(Identifier.objects.filter(profile=profile), args[1])
            profile_split(profile=profile, kind=ident.kind, value=ident.value, actor=ACTOR)
        elif kind == "reverse" and (decision := pick(LinkDecision.objects.filter(reversed_at=None), args[0])):
            decision_reverse(decision=decision, actor=ACTOR)
    except DecisionError:
        pass  # e.g. splitting a profile's only identifier: refused, nothing changed


def state() -> dict:
    """Everything the resolver derives, ids included (a profile's id is its founding record's)."""
    return {
        "profiles": sorted(
            Profile.objects.values_list(
                "id", "cookie", "email", "phone_number", "city", "age", "first_seen", "last_seen", "cookie_count"
            )
        ),
        "trait_sources": sorted((p.id, repr(sorted(p.trait_sources.items()))) for p in Profile.objects.all()),
        "identifiers": sorted(Identifier.objects.values_list("kind", "value", "profile", "first_record")),
        "interests": sorted(ProfileInterest.objects.values_list("profile", "interest__key")),
        "records": sorted(RawRecord.objects.values_list("id", "profile", "outcome")),
        "held": sorted(HeldLink.objects.values_list("raw_record", "kind", "value", "reason", "detail", "decision")),
        "ledger": sorted(
            ProfileMerge.objects.values_list(
                "survivor_id", "absorbed_id", "identifier_kind", "identifier_value", "raw_record"
            )
        ),
    }


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(guards=guard_settings, match_phone=st.booleans(), first=ingest_step, script=steps)
def test_rebuild_reproduces_decisions_in_any_order(guards, match_phone, first, script):
    with override_settings(IDENTITY_MATCH_PHONE=match_phone), transaction.atomic():
        IdentityGuards.objects.create(**guards)
        for step in [first, *script]:
            run_step(step)
        live = state()
        event(f"decisions: {LinkDecision.objects.count()}, held: {HeldLink.objects.pending().count()}")
        profiles_rebuild()
        assert state() == live
        transaction.set_rollback(True)


def test_the_property_sees_decisions_at_work():
    """The strategy reaches every kind of decision, so the property above is not vacuous."""
    script = [
        ("ingest", [{**v, "cookie": f"c{n}", "email": "info@x.com", "minute": n} for n, v in enumerate([{}] * 4, 1)]),
        ("reject", 0),
        ("ingest", [{"cookie": "c5", "email": "info@x.com", "minute": 10}]),
        ("approve", 0),
        ("split", 0, 0),
        ("reverse", 0),
    ]
    blank = {"phone_number": "", "city": "", "age": "", "interests": ""}
    script = [(k, [{**blank, **v} for v in a[0]]) if k == "ingest" else (k, *a) for k, *a in script]
    with transaction.atomic():
        IdentityGuards.objects.create(max_cookies_per_email=2)
        for step in script:
            run_step(step)
        kinds = sorted(LinkDecision.objects.values_list("kind", flat=True))
        assert kinds == ["approve", "detach", "detach"]
        assert LinkDecision.objects.exclude(reversed_at=None).count() == 1
        live = state()
        profiles_rebuild()
        assert state() == live
        transaction.set_rollback(True)
