"""A marketer takes apart a profile a shared info@ address glued together, in a real browser."""

import pytest

from tests.browser.conftest import manage
from tests.builders import record, write_csv

pytestmark = pytest.mark.browser

SHARED = "info@corner-shop.example"
PEOPLE = ("ann", "ben", "cat", "dan", "eve", "fay", "gus", "hal")


@pytest.fixture
def glued_by_info_address(site_database, site, tmp_path):
    """Eight people with two cookies each, each of whom once left the shop's info@ address: one profile
    of 16 cookies, more than any generated person has, so it tops the identity clusters page."""
    rows = []
    for name in PEOPLE:
        own = f"journey-{name}@example.com"
        rows += [
            record(cookie=f"journey-{name}-1", email=own, created_at="3/1/2025 09:00"),
            record(cookie=f"journey-{name}-2", email=own, created_at="3/2/2025 09:00"),
            record(cookie=f"journey-{name}-1", email=SHARED, created_at="3/3/2025 09:00"),
        ]
    manage(site_database, "import_csv", str(write_csv(tmp_path / "info-address.csv", rows)))


def test_split_a_profile_glued_by_a_shared_address(page, artifacts, glued_by_info_address):
    page.goto("/admin/")
    page.click("text=Identity clusters")
    page.wait_for_selector('#chart-cookies-per-profile[data-drawn="true"]', state="attached")
    largest = page.locator("#largest-clusters tbody tr").first
    assert SHARED in largest.inner_text()  # the suspicious cluster comes first
    assert largest.locator("td").first.inner_text() == "16"  # its cookies
    box = page.locator("#largest-clusters").bounding_box()
    top = {"x": box["x"], "y": box["y"], "width": box["width"], "height": 500}
    page.screenshot(path=artifacts / "7-split-cluster.png", full_page=True, clip=top)

    page.locator("#largest-clusters tbody tr", has_text=SHARED).locator("a.split-link").click()
    page.wait_for_url("**/split/?identifier=**")
    assert page.is_checked(f'input[name="identifier"][value="email:{SHARED}"]')
    radios = page.locator('#split-identifiers input[name="identifier"]')
    assert radios.count() == 1 + 2 * len(PEOPLE) + len(PEOPLE)  # the shared email, the cookies, their emails
    page.fill("#split-reason", "The corner shop's mailbox, not a person")
    page.screenshot(path=artifacts / "7-split-choose.png", full_page=True)
    page.click("#split-form input[type=submit]")

    page.wait_for_url("**/admin/users_app/profile/?id__in=**")
    message = page.locator("ul.messagelist li.success").inner_text()
    assert f"Split email: {SHARED} from profile" in message
    assert f"its records now form {len(PEOPLE)} profiles" in message
    for name in PEOPLE:
        assert f"email: journey-{name}@example.com" in message
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == len(PEOPLE)
    assert set(rows.locator("td.field-cookie_count").all_inner_texts()) == {"2"}
    page.screenshot(path=artifacts / "7-split-result.png", full_page=True)

    # Each resulting profile is one person again, and the clusters page no longer shows the shop's glue.
    rows.first.locator("th a").click()
    page.wait_for_url("**/change/**")
    explain = page.locator("#explain-links")
    explain.wait_for()
    assert explain.locator("tr").count() == 1 + 3  # the header and the person's three records
    assert "Detached" in explain.inner_text()  # the info@ record kept apart by the split
    page.screenshot(path=artifacts / "7-split-person.png", full_page=True)
    page.goto("/admin/identity-clusters/")
    assert SHARED not in page.locator("#largest-clusters").inner_text()
