"""Identity governance in the admin: the guards page, the review queue, the decisions, explain and split."""

import re

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from tests.builders import identifiers_of, ingest, profile_for, record, writer_lock_held_elsewhere
from users_app import governance_admin
from users_app.ingestion import profiles_rebuild
from users_app.models import AuditEvent, HeldLink, IdentityGuards, LinkDecision, Profile, RawRecord

pytestmark = pytest.mark.django_db

GUARDS_LIST = "admin:users_app_identityguards_changelist"
GUARDS_CHANGE = "admin:users_app_identityguards_change"
QUEUE = "admin:users_app_pendinglink_changelist"
DECISIONS = "admin:users_app_linkdecision_changelist"
PROFILES = "admin:users_app_profile_changelist"
PROFILE = "admin:users_app_profile_change"
SPLIT = "admin:users_app_profile_split"
SHARED = "info@shop.example"
VIEW_PERMISSIONS = ("view_pendinglink", "view_linkdecision", "view_profile", "view_rawrecord", "view_identityguards")


def staff_client(django_user_model, username: str, codenames: tuple[str, ...]) -> Client:
    """A browser of its own, logged in as a staff member with these users_app permissions."""
    user = django_user_model.objects.create_user(username, password="pw", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="users_app", codename__in=codenames))
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def decider(django_user_model):
    """A marketer who may change the guards and decide links (add_linkdecision), and nothing more."""
    return staff_client(django_user_model, "decider", (*VIEW_PERMISSIONS, "change_identityguards", "add_linkdecision"))


@pytest.fixture
def viewer(django_user_model):
    """A staff member who may look at all of it but decide nothing."""
    return staff_client(django_user_model, "viewer", VIEW_PERMISSIONS)


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def save_guards(client, **caps):
    """What the marketer does: open the guards from the admin's list, fill them in, save."""
    opened = client.get(reverse(GUARDS_LIST))
    assert opened.status_code == 302
    form = {"max_cookies_per_email": "", "max_cookies_per_phone": "", "max_cookies_to_merge": "", **caps}
    return client.post(opened.url, form, follow=True)


def family(cookies: int = 4):
    """One record per cookie, all with the same email, a day apart; the outcomes."""
    return ingest(
        *(
            record(cookie=f"c{n}", email="family@example.com", created_at=f"1/{n}/2025 10:00")
            for n in range(1, cookies + 1)
        )
    )


@pytest.fixture
def held_fourth(decider):
    """The guards page sets a cap of three cookies per email; the fourth cookie's link is held."""
    save_guards(decider, max_cookies_per_email="3")
    outcomes = family()
    return outcomes[3]


def act(client, list_name: str, action: str, pks):
    return client.post(reverse(list_name), {"action": action, "_selected_action": list(pks)}, follow=True)


def info_address_people():
    """Alice, Bob (two cookies) and Carol, each later sending one record with the shop's info@ address."""
    ingest(
        record(cookie="a1", email="alice@example.com", created_at="1/1/2025 09:00"),
        record(cookie="b1", email="bob@example.com", created_at="1/2/2025 09:00"),
        record(cookie="b2", email="bob@example.com", created_at="1/3/2025 09:00"),
        record(cookie="k1", email="carol@example.com", created_at="1/4/2025 09:00"),
        record(cookie="a1", email=SHARED, created_at="1/5/2025 09:00"),
        record(cookie="b1", email=SHARED, created_at="1/6/2025 09:00"),
        record(cookie="k1", email=SHARED, created_at="1/7/2025 09:00"),
    )
    return profile_for("email", SHARED)


# --- Guards --------------------------------------------------------------------------------------


def test_the_guards_list_opens_the_one_row_and_creates_it_on_the_first_visit(decider):
    assert not IdentityGuards.objects.exists()
    first = decider.get(reverse(GUARDS_LIST))
    [row] = IdentityGuards.objects.all()
    assert first.status_code == 302 and first.url == reverse(GUARDS_CHANGE, args=[row.pk])
    decider.get(reverse(GUARDS_LIST))
    assert list(IdentityGuards.objects.values_list("pk", flat=True)) == [row.pk]
    page = decider.get(first.url)
    assert "Each guard is off while empty" in page.content.decode()
    assert "records stored before keep the guards they met" in page.content.decode()


def test_the_guards_cannot_be_added_or_deleted(admin_client):
    admin_client.get(reverse(GUARDS_LIST))
    row = IdentityGuards.current().pk
    assert admin_client.get(reverse("admin:users_app_identityguards_add")).status_code == 403
    assert (
        admin_client.post(reverse("admin:users_app_identityguards_delete", args=[row]), {"post": "yes"}).status_code
        == 403
    )
    assert IdentityGuards.objects.filter(pk=row).exists()


def test_changed_guards_keep_their_history_and_older_records_keep_theirs(decider):
    save_guards(decider, max_cookies_per_email="2")
    family(cookies=3)  # the third cookie's link is held under a cap of 2
    assert HeldLink.objects.pending().count() == 1
    page = save_guards(decider, max_cookies_per_email="")  # guards off from now on
    assert IdentityGuards.objects.count() == 3  # the empty first row, then the two changes
    assert "max cookies per email" in page.content.decode()
    # The held record met a cap of 2: still held after a rebuild under the guards now off.
    profiles_rebuild()
    assert HeldLink.objects.pending().count() == 1
    ingest(record(cookie="c9", email="family@example.com"))  # off now: links
    assert HeldLink.objects.pending().count() == 1


def test_saved_guards_apply_to_records_ingested_afterwards_and_the_held_link_is_queued(decider):
    ingest(*(record(cookie=f"old{n}", email="old@example.com") for n in range(5)))  # before: not held
    saved = save_guards(decider, max_cookies_per_email="3")
    assert IdentityGuards.current().max_cookies_per_email == 3
    # A new row in force from the next record: the five records above keep the guards they met.
    assert IdentityGuards.current().effective_from_record == RawRecord.objects.latest("id").pk + 1
    assert any("applies to records ingested from then on" in m for m in messages_of(saved))

    outcomes = family()

    queue = decider.get(reverse(QUEUE))
    [held] = queue.context["cl"].result_list
    assert (held.raw_record_id, held.kind, held.value) == (outcomes[3].raw_record_id, "email", "family@example.com")
    html = queue.content.decode()
    assert "links held for review" in html.lower()
    assert reverse("admin:users_app_rawrecord_change", args=[outcomes[3].raw_record_id]) in html
    assert reverse(PROFILE, args=[outcomes[3].profile_id]) in html  # the record's own profile
    assert reverse(PROFILE, args=[profile_for("email", "family@example.com").pk]) in html  # the one it would join
    assert "Cookie cap" in html and "the cap is 3" in html
    assert profile_for("email", "old@example.com").cookie_count == 5


def test_the_queue_shows_only_pending_links(decider, held_fourth):
    act(decider, QUEUE, "reject_selected", HeldLink.objects.values_list("pk", flat=True))
    assert HeldLink.objects.get().reason == HeldLink.Reason.DETACHED  # kept apart, not pending
    assert list(decider.get(reverse(QUEUE)).context["cl"].result_list) == []


def test_approve_merges_now(decider, held_fourth):
    answer = act(decider, QUEUE, "approve_selected", HeldLink.objects.values_list("pk", flat=True))

    merged = profile_for("email", "family@example.com")
    assert merged.cookie_count == 4
    assert identifiers_of(merged) >= {"cookie:c4"}
    assert not HeldLink.objects.pending().exists()
    decision = LinkDecision.objects.get()
    assert (decision.kind, decision.actor, decision.raw_record_id) == (
        "approve",
        "user:decider",
        held_fourth.raw_record_id,
    )
    assert AuditEvent.objects.filter(action=AuditEvent.Action.LINK_DECISION, actor="user:decider").count() == 1
    [message] = messages_of(answer)
    assert message.startswith("Approved 1 held link;") and f">{merged.pk}</a>" in message


def test_reject_keeps_apart(decider, held_fourth):
    answer = act(decider, QUEUE, "reject_selected", HeldLink.objects.values_list("pk", flat=True))

    assert profile_for("email", "family@example.com").cookie_count == 3
    assert identifiers_of(Profile.objects.get(pk=held_fourth.profile_id)) == {"cookie:c4"}
    assert LinkDecision.objects.get().kind == "detach"
    assert not HeldLink.objects.pending().exists()
    assert messages_of(answer)[0].startswith("Rejected 1 held link;")


def test_the_held_links_page_offers_approve_and_reject(decider, held_fourth):
    held = HeldLink.objects.get()
    page = decider.get(reverse("admin:users_app_pendinglink_change", args=[held.pk])).content.decode()
    assert 'value="approve_selected"' in page and 'value="reject_selected"' in page
    decider.post(reverse(QUEUE), {"action": "approve_selected", "_selected_action": [held.pk]})
    assert profile_for("email", "family@example.com").cookie_count == 4


def test_a_link_decided_meanwhile_is_reported_not_decided_twice(decider, held_fourth):
    pk = HeldLink.objects.get().pk
    act(decider, QUEUE, "reject_selected", [pk])
    answer = act(decider, QUEUE, "approve_selected", [pk])  # a stale page: the link is no longer pending
    assert messages_of(answer) == ["The selected links are no longer held for review."]
    assert LinkDecision.objects.count() == 1
    assert profile_for("email", "family@example.com").cookie_count == 3


def test_deciding_while_an_import_runs_is_an_error_message(decider, transactional_db):
    save_guards(decider, max_cookies_per_email="3")
    family()
    pk = HeldLink.objects.get().pk
    with writer_lock_held_elsewhere():
        answer = act(decider, QUEUE, "approve_selected", [pk])
    assert answer.status_code == 200
    [message] = messages_of(answer)
    assert "Another import or rebuild is running" in message and "1 link(s) left undecided" in message
    assert not LinkDecision.objects.exists()
    assert HeldLink.objects.pending().count() == 1


def test_too_many_links_at_once_are_refused_with_a_message(decider, monkeypatch):
    monkeypatch.setattr(governance_admin, "DECIDE_AT_ONCE", 1)
    save_guards(decider, max_cookies_per_email="1")
    family(cookies=3)
    answer = act(decider, QUEUE, "approve_selected", HeldLink.objects.values_list("pk", flat=True))
    assert messages_of(answer) == ["Select at most 1 at once."]
    assert not LinkDecision.objects.exists()


# --- Decisions -----------------------------------------------------------------------------------


def test_reversing_a_rejection_puts_the_link_back_in_the_queue(decider, held_fourth):
    act(decider, QUEUE, "reject_selected", HeldLink.objects.values_list("pk", flat=True))
    decision = LinkDecision.objects.get()

    answer = act(decider, DECISIONS, "reverse_selected", [decision.pk])

    decision.refresh_from_db()
    assert decision.reversed_at is not None and decision.reversed_by == "user:decider"
    assert messages_of(answer)[0].startswith("Reversed 1 decision;")
    assert HeldLink.objects.pending().count() == 1  # the guard still holds it: a question again
    # Reversing again is refused with a message, and the ledger keeps both states.
    again = act(decider, DECISIONS, "reverse_selected", [decision.pk])
    assert any("already reversed" in m for m in messages_of(again))
    in_force = decider.get(reverse(DECISIONS), {"active": "yes"}).context["cl"].result_list
    reversed_ = decider.get(reverse(DECISIONS), {"active": "no"}).context["cl"].result_list
    assert (list(in_force), list(reversed_)) == ([], [decision])


def test_the_decisions_list_filters_by_kind(decider, held_fourth):
    act(decider, QUEUE, "approve_selected", HeldLink.objects.values_list("pk", flat=True))
    page = decider.get(reverse(DECISIONS), {"kind__exact": "approve"})
    assert [d.kind for d in page.context["cl"].result_list] == ["approve"]
    assert list(decider.get(reverse(DECISIONS), {"kind__exact": "detach"}).context["cl"].result_list) == []


def test_decisions_are_read_only(admin_client, held_fourth):
    admin_client.post(
        reverse(QUEUE),
        {"action": "reject_selected", "_selected_action": list(HeldLink.objects.values_list("pk", flat=True))},
    )
    decision = LinkDecision.objects.get()
    assert admin_client.get(reverse("admin:users_app_linkdecision_add")).status_code == 403
    assert (
        admin_client.post(
            reverse("admin:users_app_linkdecision_delete", args=[decision.pk]), {"post": "yes"}
        ).status_code
        == 403
    )
    assert admin_client.get(reverse("admin:users_app_pendinglink_add")).status_code == 403
    view = admin_client.get(reverse("admin:users_app_linkdecision_change", args=[decision.pk]))
    assert view.status_code == 200 and b'name="_save"' not in view.content


# --- Permissions ---------------------------------------------------------------------------------


def test_without_the_permission_nothing_can_be_decided(viewer, held_fourth):
    queue = viewer.get(reverse(QUEUE))
    assert queue.status_code == 200 and len(queue.context["cl"].result_list) == 1
    assert "approve_selected" not in queue.content.decode()
    held = HeldLink.objects.get()
    assert (
        'value="approve_selected"'
        not in viewer.get(reverse("admin:users_app_pendinglink_change", args=[held.pk])).content.decode()
    )
    act(viewer, QUEUE, "approve_selected", [held.pk])
    act(viewer, QUEUE, "reject_selected", [held.pk])
    assert not LinkDecision.objects.exists()
    assert HeldLink.objects.pending().count() == 1

    glued = Profile.objects.get(pk=held_fourth.profile_id)
    assert viewer.get(reverse(SPLIT, args=[glued.pk])).status_code == 403
    assert viewer.post(reverse(SPLIT, args=[glued.pk]), {"identifier": "cookie:c4"}).status_code == 403
    assert "Split…" not in viewer.get(reverse(PROFILE, args=[glued.pk])).content.decode()
    current = IdentityGuards.current().pk
    assert viewer.post(reverse(GUARDS_CHANGE, args=[current]), {"max_cookies_per_email": "1"}).status_code == 403
    assert IdentityGuards.current().max_cookies_per_email == 3


def test_the_split_page_needs_a_staff_login(client, db):
    glued = info_address_people()
    answer = client.get(reverse(SPLIT, args=[glued.pk]))
    assert answer.status_code == 302 and reverse("admin:login") in answer.url


# --- Explain -------------------------------------------------------------------------------------


def explain_section(html: str) -> str:
    start = html.index('id="explain-links"')
    return html[start : html.index("</table>", start)]


def test_the_profile_page_explains_which_records_made_it_one_person(decider):
    glued = info_address_people()
    page = decider.get(reverse(PROFILE, args=[glued.pk])).content.decode()
    assert "Why these records are one person" in page
    section = explain_section(page)
    record_ids = list(glued.raw_records.values_list("pk", flat=True))
    assert len(record_ids) == 7
    for raw_id in record_ids:
        assert f'href="{reverse("admin:users_app_rawrecord_change", args=[raw_id])}"' in section
    assert f"email: {SHARED}" in section
    assert "cookie: b1" in section  # Bob's info@ record merged his profile in through his cookie


def test_explain_escapes_the_values_records_bring(decider):
    [outcome] = ingest(record(cookie="<b>bold</b>", email="x@example.com", city="<script>x</script>"))
    page = decider.get(reverse(PROFILE, args=[outcome.profile_id])).content.decode()
    assert "<script>x</script>" not in page and "<b>bold</b>" not in page
    assert "&lt;script&gt;x&lt;/script&gt;" in page
    assert "cookie: &lt;b&gt;bold&lt;/b&gt;" in explain_section(page)


def test_explain_links_a_held_link_then_the_decision_that_settled_it(decider, held_fourth):
    url = reverse(PROFILE, args=[held_fourth.profile_id])
    held = HeldLink.objects.get()
    section = explain_section(decider.get(url).content.decode())
    assert "email: family@example.com — Cookie cap: would put 4 cookies" in section
    assert reverse("admin:users_app_pendinglink_change", args=[held.pk]) in section

    act(decider, QUEUE, "reject_selected", [held.pk])
    page = decider.get(url).content.decode()
    decision = LinkDecision.objects.get()
    assert "email: family@example.com — Detached: kept apart by a decision" in explain_section(page)
    assert reverse("admin:users_app_linkdecision_change", args=[decision.pk]) in explain_section(page)
    assert 'id="explain-decisions"' in page and "user:decider" in page


# --- Split ---------------------------------------------------------------------------------------


def test_the_split_page_lists_the_profiles_identifiers_to_choose_from(decider):
    glued = info_address_people()
    page = decider.get(reverse(SPLIT, args=[glued.pk]), {"identifier": f"email:{SHARED}"})
    html = page.content.decode()
    radios = re.findall(r'<input type="radio" name="identifier" value="([^"]+)"', html)
    assert sorted(radios) == sorted(f"{kind}:{value}" for kind, value in glued.identifiers.values_list("kind", "value"))
    assert re.search(rf'value="email:{re.escape(SHARED)}"[^>]*\bchecked\b', html)


def test_the_split_page_lists_emails_first_and_not_every_cookie_of_a_huge_profile(decider, monkeypatch):
    monkeypatch.setattr(governance_admin, "SPLIT_COOKIES_SHOWN", 2)
    glued = info_address_people()  # cookies a1, b1, b2, k1
    page = decider.get(reverse(SPLIT, args=[glued.pk]), {"identifier": "cookie:k1"}).content.decode()
    radios = re.findall(r'<input type="radio" name="identifier" value="([^"]+)"', page)
    assert radios == [
        "email:alice@example.com",
        "email:bob@example.com",
        "email:carol@example.com",
        f"email:{SHARED}",
        "cookie:a1",
        "cookie:b1",
        "cookie:k1",  # asked for by the link that opened the page
    ]
    assert "And 1 more cookie, not listed." in page


def test_split_gives_back_the_people_a_shared_address_glued(decider):
    glued = info_address_people()

    answer = decider.post(
        reverse(SPLIT, args=[glued.pk]), {"identifier": f"email:{SHARED}", "reason": "shop mailbox"}, follow=True
    )

    alice, bob, carol = (profile_for("email", f"{name}@example.com") for name in ("alice", "bob", "carol"))
    assert identifiers_of(alice) == {"cookie:a1", "email:alice@example.com"}
    assert identifiers_of(bob) == {"cookie:b1", "cookie:b2", "email:bob@example.com"}
    assert identifiers_of(carol) == {"cookie:k1", "email:carol@example.com"}
    assert not Profile.objects.with_identifier("email", SHARED).exists()
    decision = LinkDecision.objects.get()
    assert (decision.kind, decision.actor, decision.reason, decision.profile_id) == (
        "detach",
        "user:decider",
        "shop mailbox",
        glued.pk,
    )
    # The marketer lands on the list of the resulting profiles, each named with its emails.
    ids = sorted([alice.pk, bob.pk, carol.pk])
    assert answer.redirect_chain == [(f"{reverse(PROFILES)}?id__in={','.join(map(str, ids))}", 302)]
    assert sorted(p.pk for p in answer.context["cl"].result_list) == ids
    [message] = messages_of(answer)
    assert message.startswith(f"Split email: {SHARED} from profile {glued.pk}: its records now form 3 profiles")
    for person in (alice, bob, carol):
        email = person.identifiers.get(kind="email").value
        assert f'<a href="{reverse(PROFILE, args=[person.pk])}">{person.pk}</a> (email: {email})' in message


def test_a_split_that_leaves_one_profile_opens_it(decider):
    [first, second] = ingest(record(cookie="z1", email="zed@example.com"), record(cookie="z2", email="zed@example.com"))
    # Both records carry the email, so without the first cookie's link they are still one person.
    answer = decider.post(reverse(SPLIT, args=[first.profile_id]), {"identifier": "cookie:z1"}, follow=True)
    [result] = Profile.objects.all()
    assert answer.redirect_chain == [(reverse(PROFILE, args=[result.pk]), 302)]
    assert set(result.raw_records.values_list("pk", flat=True)) == {first.raw_record_id, second.raw_record_id}
    assert "now form 1 profile:" in messages_of(answer)[0]


@pytest.mark.parametrize(
    ("form", "problem"),
    [
        ({"identifier": "email:nobody@example.com"}, "holds no email 'nobody@example.com'"),
        ({"identifier": "address:alice@example.com"}, "Choose one of the profile's identifiers"),
        ({"identifier": SHARED}, "Choose one of the profile's identifiers"),  # no kind
        ({"identifier": "email:"}, "Choose one of the profile's identifiers"),
        ({}, "Choose one of the profile's identifiers"),
        ({"identifier": f"email:{SHARED}", "reason": "x" * 301}, "longer than 300 characters"),
    ],
)
def test_a_bad_split_request_is_an_error_message(decider, form, problem):
    glued = info_address_people()
    before = identifiers_of(glued)
    answer = decider.post(reverse(SPLIT, args=[glued.pk]), form)
    assert answer.status_code == 200
    [message] = messages_of(answer)
    assert problem in message
    assert not LinkDecision.objects.exists()
    assert identifiers_of(Profile.objects.get(pk=glued.pk)) == before


def test_splitting_a_profile_that_is_gone_says_so(decider, db):
    answer = decider.get(reverse(SPLIT, args=[999_999]), follow=True)
    assert answer.status_code == 200
    assert "Profile 999999 no longer exists" in messages_of(answer)[0]


def test_split_while_an_import_runs_is_an_error_message(decider, transactional_db):
    glued = info_address_people()
    with writer_lock_held_elsewhere():
        answer = decider.post(reverse(SPLIT, args=[glued.pk]), {"identifier": f"email:{SHARED}"})
    assert answer.status_code == 200
    assert "Another import or rebuild is running" in messages_of(answer)[0]
    assert not LinkDecision.objects.exists()


def test_a_split_is_reversed_from_the_decisions_list(decider):
    glued = info_address_people()
    decider.post(reverse(SPLIT, args=[glued.pk]), {"identifier": f"email:{SHARED}"})
    act(decider, DECISIONS, "reverse_selected", [LinkDecision.objects.get().pk])
    restored = profile_for("email", SHARED)
    assert restored.pk == glued.pk and restored.cookie_count == 4


def test_the_split_action_opens_the_split_page_of_one_profile(decider):
    glued = info_address_people()
    other = ingest(record(cookie="solo", email="solo@example.com"))[0].profile_id
    one = decider.post(reverse(PROFILES), {"action": "split_selected", "_selected_action": [glued.pk]})
    assert one.status_code == 302 and one.url == reverse(SPLIT, args=[glued.pk])
    two = act(decider, PROFILES, "split_selected", [glued.pk, other])
    assert messages_of(two) == ["Select exactly one profile to split."]
    assert "split_selected" in decider.get(reverse(PROFILES)).content.decode()


def test_the_profile_page_links_to_its_split_page(decider):
    glued = info_address_people()
    page = decider.get(reverse(PROFILE, args=[glued.pk])).content.decode()
    assert f'href="{reverse(SPLIT, args=[glued.pk])}"' in page and "Split…" in page


def test_the_clusters_page_offers_split_to_those_allowed(decider, viewer):
    glued = info_address_people()
    page = decider.get(reverse("admin:identity-clusters")).content.decode()
    assert f'href="{reverse(SPLIT, args=[glued.pk])}?identifier=email%3Ainfo%40shop.example"' in page
    assert "Split…" not in viewer.get(reverse("admin:identity-clusters")).content.decode()


def test_a_guard_change_is_in_the_audit_log(decider):
    save_guards(decider, max_cookies_per_email="3", max_cookies_to_merge="10")

    event = AuditEvent.objects.get(action=AuditEvent.Action.GUARDS_CHANGED)
    assert event.actor == "user:decider"
    assert event.details == {
        "max_cookies_per_email": 3,
        "max_cookies_per_phone": None,
        "max_cookies_to_merge": 10,
        "effective_from_record": IdentityGuards.current().effective_from_record,
    }
    assert "max cookies per email 3" in event.summary and "max cookies per phone off" in event.summary
