"""Identity governance: guards hold links for review, approve / reject, split and re-link, explain."""

import pytest

from tests.builders import identifiers_of, ingest, profile_for, profiles_snapshot, record, writer_lock_held_elsewhere
from users_app.governance import (
    DecisionError,
    decision_reverse,
    guards_change,
    link_approve,
    link_reject,
    pending_links,
    profile_explain,
    profile_split,
)
from users_app.ingestion import profiles_rebuild
from users_app.locks import WriterBusy
from users_app.models import HeldLink, IdentityGuards, LinkDecision, Profile, ProfileMerge

pytestmark = pytest.mark.django_db
ACTOR = "user:tester"


def guards(**caps):
    IdentityGuards.objects.create(**caps)


def shared_email_people(email="family@example.com", cookies=4, start_day=1):
    """One record per cookie, each with the same email, a day apart."""
    return [
        record(cookie=f"c{n}", email=email, created_at=f"1/{start_day + n}/2025 10:00", city=f"City {n}")
        for n in range(1, cookies + 1)
    ]


class TestCookieCap:
    def test_guards_are_off_by_default(self):
        ingest(*shared_email_people(cookies=6))
        assert Profile.objects.count() == 1
        assert not HeldLink.objects.exists()

    def test_the_fourth_cookie_of_an_email_is_held_for_review(self):
        guards(max_cookies_per_email=3)
        outcomes = ingest(*shared_email_people(cookies=4))

        family = profile_for("email", "family@example.com")
        assert family.cookie_count == 3
        assert identifiers_of(family) == {"cookie:c1", "cookie:c2", "cookie:c3", "email:family@example.com"}
        fourth = Profile.objects.get(pk=outcomes[3].profile_id)
        assert identifiers_of(fourth) == {"cookie:c4"}
        assert fourth.email == "family@example.com"  # a trait from its own record, not a link
        [held] = pending_links()
        assert (held.raw_record_id, held.kind, held.value, held.reason) == (
            outcomes[3].raw_record_id,
            "email",
            "family@example.com",
            HeldLink.Reason.COOKIE_CAP,
        )
        assert "4 cookies" in held.detail and "cap is 3" in held.detail

    def test_a_known_cookie_is_not_held(self):
        guards(max_cookies_per_email=3)
        ingest(*shared_email_people(cookies=3), record(cookie="c2", email="family@example.com"))
        assert not HeldLink.objects.exists()
        assert Profile.objects.count() == 1

    def test_approve_merges_and_writes_the_ledger(self):
        guards(max_cookies_per_email=3)
        outcomes = ingest(*shared_email_people(cookies=4))
        [held] = pending_links()

        result = link_approve(held=held, actor=ACTOR)

        family = profile_for("email", "family@example.com")
        assert family.cookie_count == 4
        assert result.profiles == [family.pk]
        assert not pending_links().exists()
        merge = ProfileMerge.objects.get(absorbed_id=outcomes[3].profile_id)
        assert (merge.survivor_id, merge.identifier_value, merge.raw_record_id) == (
            family.pk,
            "family@example.com",
            outcomes[3].raw_record_id,
        )
        assert family.city == "City 4"  # the latest record's trait wins once merged

    def test_after_an_approval_the_next_cookie_is_held_again(self):
        guards(max_cookies_per_email=3)
        ingest(*shared_email_people(cookies=4))
        link_approve(held=pending_links().get(), actor=ACTOR)
        ingest(record(cookie="c5", email="family@example.com"))
        [held] = pending_links()
        assert held.raw_record.data["cookie"] == "c5"

    def test_reject_keeps_it_apart_also_for_later_records(self):
        guards(max_cookies_per_email=3)
        outcomes = ingest(*shared_email_people(cookies=4))
        link_reject(held=pending_links().get(), actor=ACTOR)

        assert not pending_links().exists()
        later = ingest(
            record(cookie="c4", email="family@example.com", created_at="2/1/2025 10:00"),
            record(cookie="c4", email="family@example.com", city="Later"),
        )
        assert {o.profile_id for o in later} == {outcomes[3].profile_id}
        assert not pending_links().exists()  # decided once: not asked again
        family = profile_for("email", "family@example.com")
        assert family.cookie_count == 3
        assert identifiers_of(Profile.objects.get(pk=outcomes[3].profile_id)) == {"cookie:c4"}
        # Another new cookie is a new question.
        ingest(record(cookie="c9", email="family@example.com"))
        assert pending_links().get().raw_record.data["cookie"] == "c9"

    def test_reject_survives_a_rebuild(self):
        guards(max_cookies_per_email=3)
        ingest(*shared_email_people(cookies=4))
        link_reject(held=pending_links().get(), actor=ACTOR)
        before = profiles_snapshot()
        profiles_rebuild()
        assert profiles_snapshot() == before
        assert not pending_links().exists()

    def test_a_decided_link_cannot_be_decided_again(self):
        guards(max_cookies_per_email=3)
        ingest(*shared_email_people(cookies=4))
        held = pending_links().get()
        link_reject(held=held, actor=ACTOR)
        detached = HeldLink.objects.get()
        with pytest.raises(DecisionError, match="not held for review"):
            link_approve(held=detached, actor=ACTOR)

    def test_a_held_link_joined_by_other_links_since_cannot_be_rejected(self):
        guards(max_cookies_per_email=3)
        ingest(*shared_email_people(cookies=4))
        held = pending_links().get()
        # The same device later shows up under another of the family's identifiers, approved.
        ingest(record(cookie="c1", email="fourth@example.com"), record(cookie="c4", email="fourth@example.com"))
        approved = pending_links().exclude(pk=held.pk).get()
        link_approve(held=approved, actor=ACTOR)
        held = pending_links().get()
        assert held.raw_record.profile_id == profile_for("email", "family@example.com").pk
        with pytest.raises(DecisionError, match="split the profile"):
            link_reject(held=held, actor=ACTOR)

    def test_decisions_wait_for_no_import_they_are_refused_while_one_runs(self, transactional_db):
        guards(max_cookies_per_email=3)
        ingest(*shared_email_people(cookies=4))
        held = pending_links().get()
        with writer_lock_held_elsewhere(), pytest.raises(WriterBusy):
            link_approve(held=held, actor=ACTOR)
        assert not LinkDecision.objects.exists()
        assert pending_links().count() == 1

    def test_phone_cap_applies_where_phones_link(self, settings):
        settings.IDENTITY_MATCH_PHONE = True
        guards(max_cookies_per_phone=1)
        ingest(
            record(cookie="p1", email="a@example.com", phone_number="+14155550100"),
            record(cookie="p2", email="b@example.com", phone_number="+14155550100"),
        )
        [held] = pending_links()
        assert held.kind == "phone"
        assert Profile.objects.count() == 2


class TestGuardChanges:
    def test_a_tighter_cap_later_does_not_undo_earlier_merges_when_a_decision_replays_them(self):
        ingest(*shared_email_people(cookies=4))  # no guards: one family of four cookies
        guards_change(actor=ACTOR, max_cookies_per_email=2, max_cookies_per_phone=None, max_cookies_to_merge=None)
        ingest(record(cookie="c5", email="family@example.com"))
        held = pending_links().get()
        link_reject(held=held, actor=ACTOR)  # replays the family's records
        family = profile_for("email", "family@example.com")
        assert family.cookie_count == 4
        assert not pending_links().exists()
        before = profiles_snapshot()
        profiles_rebuild()
        assert profiles_snapshot() == before


class TestMergeGuard:
    def two_households(self):
        ingest(
            *shared_email_people("one@example.com", cookies=3),
            *[record(cookie=f"d{n}", email="two@example.com") for n in range(1, 4)],
        )

    def test_merging_two_large_profiles_is_held(self):
        guards(max_cookies_to_merge=2)
        self.two_households()
        outcomes = ingest(record(cookie="c1", email="two@example.com"))
        [held] = pending_links()
        assert (held.kind, held.value, held.reason) == ("email", "two@example.com", HeldLink.Reason.MERGE_GUARD)
        assert outcomes[0].profile_id == profile_for("email", "one@example.com").pk
        assert Profile.objects.count() == 2

    def test_a_small_profile_still_merges(self):
        guards(max_cookies_to_merge=2)
        self.two_households()
        ingest(record(cookie="solo", email="solo@example.com"), record(cookie="solo", email="one@example.com"))
        assert not HeldLink.objects.exists()
        assert profile_for("email", "solo@example.com") == profile_for("email", "one@example.com")


def info_address_people():
    """Three people, each with their own cookies and email, glued by one shared info@ record each."""
    people = {
        "alice": [
            record(cookie="a1", email="alice@example.com", city="Austin", age="31", created_at="1/1/2025 09:00"),
            record(cookie="a1", email="info@shop.example", created_at="1/5/2025 09:00", interests="Tech"),
        ],
        "bob": [
            record(cookie="b1", email="bob@example.com", city="Boston", age="42", created_at="1/2/2025 09:00"),
            record(cookie="b2", email="bob@example.com", created_at="1/3/2025 09:00", gender="Male"),
            record(cookie="b1", email="info@shop.example", created_at="1/6/2025 09:00", interests="Golf"),
        ],
        "carol": [
            record(cookie="k1", email="carol@example.com", city="Chicago", created_at="1/4/2025 09:00"),
            record(cookie="k1", email="info@shop.example", created_at="1/7/2025 09:00", city="Denver"),
        ],
    }
    ingest(*[r for person in ("alice", "bob", "carol") for r in people[person][:-1]])
    separate = profiles_snapshot()
    ingest(*[people[person][-1] for person in ("alice", "bob", "carol")])
    return separate


class TestSplit:
    def test_split_gives_back_the_original_people_and_relink_restores(self):
        separate_before_info = info_address_people()
        merged = profile_for("email", "info@shop.example")
        assert merged.cookie_count == 4
        glued = profiles_snapshot()

        result = profile_split(profile=merged, kind="email", value="info@shop.example", actor=ACTOR)

        after = profiles_snapshot()
        assert len(after) == 3
        by_email = {p.email: p for p in Profile.objects.all()}
        assert set(by_email) == {"info@shop.example"}  # each person's latest record named it
        alice = profile_for("email", "alice@example.com")
        bob = profile_for("email", "bob@example.com")
        carol = profile_for("email", "carol@example.com")
        assert identifiers_of(alice) == {"cookie:a1", "email:alice@example.com"}
        assert identifiers_of(bob) == {"cookie:b1", "cookie:b2", "email:bob@example.com"}
        assert identifiers_of(carol) == {"cookie:k1", "email:carol@example.com"}
        # Traits recomputed from each person's own records.
        assert (alice.city, alice.age, alice.gender) == ("Austin", 31, "")
        assert (bob.city, bob.age, bob.gender, bob.cookie_count) == ("Boston", 42, "Male", 2)
        assert carol.city == "Denver"
        assert [i.name for i in alice.interests.all()] == ["Tech"]
        assert [i.name for i in bob.interests.all()] == ["Golf"]
        assert sorted(result.profiles) == sorted([alice.pk, bob.pk, carol.pk])
        # The same people as before the shared address arrived, apart from what its records added.
        assert {k for k in after} == {tuple(sorted(k)) for k in separate_before_info}
        assert not Profile.objects.filter(identifiers__value="info@shop.example").exists()
        decision = LinkDecision.objects.get()
        assert (decision.kind, decision.profile_id, decision.actor) == ("detach", merged.pk, ACTOR)

        # Later records of these people stay apart.
        ingest(record(cookie="b2", email="info@shop.example", created_at="2/1/2025 09:00"))
        assert len(profiles_snapshot()) == 3

        decision_reverse(decision=decision, actor=ACTOR)
        restored = profile_for("email", "info@shop.example")
        assert restored.pk == merged.pk
        assert profiles_snapshot().keys() == glued.keys()
        assert restored.cookie_count == 4

    def test_split_is_reproduced_by_rebuild(self):
        info_address_people()
        profile_split(
            profile=profile_for("email", "info@shop.example"), kind="email", value="info@shop.example", actor=ACTOR
        )
        before = profiles_snapshot()
        profiles_rebuild()
        assert profiles_snapshot() == before

    def test_split_refuses_what_the_profile_does_not_hold(self):
        info_address_people()
        merged = profile_for("email", "info@shop.example")
        with pytest.raises(DecisionError) as missing:
            profile_split(profile=merged, kind="email", value="nobody@example.com", actor=ACTOR)
        assert missing.value.field == "value"
        lonely = Profile.objects.get(pk=ingest(record(cookie="solo", email=""))[0].profile_id)
        with pytest.raises(DecisionError, match="only identifier"):
            profile_split(profile=lonely, kind="cookie", value="solo", actor=ACTOR)
        assert not LinkDecision.objects.exists()

    def test_reversing_twice_is_refused(self):
        info_address_people()
        result = profile_split(
            profile=profile_for("email", "info@shop.example"), kind="email", value="info@shop.example", actor=ACTOR
        )
        decision_reverse(decision=result.decision, actor=ACTOR)
        with pytest.raises(DecisionError, match="already reversed"):
            decision_reverse(decision=result.decision, actor=ACTOR)


class TestExplain:
    def test_explain_shows_the_chain_of_links(self):
        info_address_people()
        merged = profile_for("email", "info@shop.example")
        explanation = profile_explain(merged)
        assert explanation.records == 7
        steps = {s.record: s for s in explanation.steps}
        first = explanation.steps[0]
        assert first.outcome == "created" and set(first.added) == {("cookie", "a1"), ("email", "alice@example.com")}
        merges = [m for s in explanation.steps for m in s.merged]
        # Bob's and Carol's info@ records joined the info@ profile and pulled their cookie's profile in.
        assert {m["via"] for m in merges} == {("cookie", "b1"), ("cookie", "k1")}
        for step in (s for s in steps.values() if s.merged):
            assert ("email", "info@shop.example") in step.joined_via

    def test_explain_names_held_links_and_decisions(self):
        guards(max_cookies_per_email=3)
        outcomes = ingest(*shared_email_people(cookies=4))
        fourth = Profile.objects.get(pk=outcomes[3].profile_id)
        [step] = profile_explain(fourth).steps
        assert step.held[0]["identifier"] == ("email", "family@example.com")
        assert step.held[0]["reason"] == "cap"
        link_reject(held=pending_links().get(), actor=ACTOR)
        explanation = profile_explain(fourth)
        assert [d.kind for d in explanation.decisions] == ["detach"]
        assert explanation.steps[0].held[0]["reason"] == "detached"


def test_a_link_held_again_after_a_decision_keeps_its_id():
    guards(max_cookies_per_email=1)
    ingest(
        record(cookie="c1", email="one@example.com"),
        record(cookie="c2", email="one@example.com"),
        record(cookie="c3", email="one@example.com"),
    )
    first, second = pending_links().order_by("raw_record")
    link_reject(held=first, actor=ACTOR)
    [still_held] = pending_links()
    assert (still_held.pk, still_held.raw_record_id) == (second.pk, second.raw_record_id)
