"""A marketer's day in a real browser: filter, save a segment, export it, read the charts, import a file."""

import csv
import re

import pytest

from tests.builders import record, write_csv

pytestmark = pytest.mark.browser

DASHBOARD_CHARTS = (
    "chart-countries", "chart-ages", "chart-genders", "chart-interests", "chart-income", "chart-income-by-gender",
    "chart-new-profiles",
)  # fmt: skip


def filter_link(page, title: str, text: str | None = None):
    """A link in the sidebar filter with this title: the one saying ``text``, or the first real choice."""
    links = page.locator(f'details[data-filter-title="{title}"] li:not(.selected) a')
    return links.filter(has_text=re.compile(rf"^{re.escape(text)}$")) if text else links.nth(1)


def test_filter_save_segment_and_export(page, artifacts):
    page.goto("/admin/users_app/profile/")
    filter_link(page, "country", "India").click()
    page.wait_for_url("**country=India**")
    age = page.locator('details[data-filter-title="age range"] form')
    age.locator('input[name="age_min"]').fill("25")
    age.locator('input[name="age_max"]').fill("45")
    age.locator("input[type=submit]").click()
    page.wait_for_url("**age_max=45**")
    interest = filter_link(page, "interests: any of")
    interest_name = interest.inner_text()
    interest.click()
    page.wait_for_url("**interests=**")
    page.screenshot(path=artifacts / "1-profiles-filtered.png", full_page=True)
    rows = page.locator("#result_list tbody tr")
    assert rows.count() > 0
    countries = rows.locator("td.field-country").all_inner_texts()
    ages = [int(text) for text in rows.locator("td.field-age").all_inner_texts()]
    assert set(countries) == {"India"} and all(25 <= age <= 45 for age in ages)
    assert all(interest_name in text for text in rows.locator("td.field-interest_list").all_inner_texts())

    page.click("#save-as-segment")
    page.fill("#id_name", "Indians 25-45 into " + interest_name)
    assert "country=India" in page.input_value("#id_query")
    page.click("input[name=_save]")
    page.wait_for_url("**/admin/cohorts_app/segment/")
    page.click(f"text=Indians 25-45 into {interest_name}")
    page.wait_for_selector(".field-member_count")
    members = int(page.inner_text(".field-member_count .readonly").replace(",", ""))
    assert members > 0
    page.screenshot(path=artifacts / "2-segment.png", full_page=True)

    with page.expect_download() as download:
        page.click("a.segment-export")
    path = artifacts / "segment-export.csv"
    download.value.save_as(path)
    with path.open(newline="", encoding="utf-8") as handle:
        exported = list(csv.DictReader(handle))
    assert len(exported) == members
    assert {row["country"] for row in exported} == {"India"}
    assert all(row["emails"] or row["cookies"] for row in exported)

    page.click("a.segment-members")
    page.wait_for_url("**/admin/users_app/profile/?**")
    assert "country=India" in page.url and "age_min=25" in page.url


def charts_drawn(page) -> dict[str, int]:
    """Chart id -> data points above zero, once every chart says it is drawn."""
    for chart in DASHBOARD_CHARTS:
        page.wait_for_selector(f'#{chart}[data-drawn="true"]', state="attached")
    points = page.evaluate(
        "ids => ids.map(id => { const c = Chart.getChart(id); return c ? c.data.datasets.reduce("
        "(n, d) => n + d.data.filter(v => v > 0).length, 0) : 0; })",
        list(DASHBOARD_CHARTS),
    )
    return dict(zip(DASHBOARD_CHARTS, points, strict=True))


def test_dashboard_draws_every_chart_for_all_and_for_a_segment(page, artifacts):
    page.goto("/admin/")
    page.click("text=Dashboard")
    drawn = charts_drawn(page)
    assert all(drawn.values()), drawn
    page.screenshot(path=artifacts / "3-dashboard.png", full_page=True)

    page.select_option("#dashboard-segment", label="Japan")
    page.click("#dashboard-controls input[type=submit]")
    page.wait_for_url("**segment=**")
    drawn = charts_drawn(page)
    assert all(drawn.values()), drawn
    assert page.evaluate("Chart.getChart('chart-countries').data.labels") == ["Japan"]
    page.screenshot(path=artifacts / "3-dashboard-segment.png", full_page=True)


def test_retention_heatmap_is_drawn(page, artifacts):
    page.goto("/admin/")
    page.click("text=Acquisition cohorts")
    heatmap = page.wait_for_selector('#retention-heatmap[data-drawn="true"]')
    assert heatmap.query_selector_all("tbody tr")
    page.screenshot(path=artifacts / "4-retention.png", full_page=True)


def test_identity_clusters_page(page, artifacts):
    page.goto("/admin/")
    page.click("text=Identity clusters")
    page.wait_for_selector('#chart-cookies-per-profile[data-drawn="true"]', state="attached")
    assert page.locator("#largest-clusters tbody tr").count() > 0
    page.screenshot(path=artifacts / "5-identity-clusters.png", full_page=True)


def test_upload_a_csv_and_watch_it_import(page, artifacts, tmp_path):
    upload = write_csv(
        tmp_path / "new-people.csv",
        [record(email=f"upload{n}@example.com", country="Japan") for n in range(40)] + [record(cookie="", email="")],
    )
    page.goto("/admin/")
    page.click("text=Import a CSV file")
    page.set_input_files("input[type=file]", upload)
    page.click("input[type=submit]")
    summary = page.wait_for_selector("#import-summary[data-status]", timeout=60_000)
    assert summary.get_attribute("data-status") == "completed"
    text = summary.inner_text()
    assert re.search(r"\b40\b", text) and re.search(r"\b1\b", text)
    page.screenshot(path=artifacts / "6-import.png", full_page=True)
    with page.expect_download() as download:
        page.click("text=Download reject report")
    download.value.save_as(artifacts / "rejects.csv")
    with (artifacts / "rejects.csv").open(newline="", encoding="utf-8") as handle:
        rejects = list(csv.reader(handle))
    assert len(rejects) == 2  # the header and the one line without an identifier
