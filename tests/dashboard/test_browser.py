"""Every dashboard page in a real headless Chromium, on a real evaluation, with no outside request.

Set ``MLD_DASHBOARD_SCREENSHOT=1`` to refresh docs/img/dashboard-evaluation.png (the README's).
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import ConsoleMessage, Locator, Page, expect
from playwright.sync_api import Error as PlaywrightError

from ml_debugger._version import __version__
from tests.dashboard.data import HOSTILE_ID, StoreData
from tests.dashboard.servers import ServerProcess

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "img" / "dashboard-evaluation.png"


def _is_problem(message: ConsoleMessage) -> bool:
    """A console error, except the browser's note on a 401 (the sign-in test asks for them)."""
    return message.type == "error" and "status of 401" not in message.text


@pytest.fixture(autouse=True)
def clean_page(page: Page, outside_requests: list[str]) -> Iterator[None]:
    """Fail a test whose page sent a request off the machine, raised a JS error or opened a dialog."""
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("console", lambda msg: problems.append(f"console: {msg.text}") if _is_problem(msg) else None)
    page.on("dialog", lambda dialog: (problems.append(f"dialog: {dialog.message}"), dialog.dismiss()))
    yield
    assert outside_requests == [], f"requests left the server: {outside_requests}"
    assert problems == []


def evaluation_url(data: StoreData, **query: str) -> str:
    suffix = "?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else ""
    return f"/dashboard/models/digits/versions/v1/results/{data.v1_all}{suffix}"


def column(page: Page, name: str, table: str = "#sample-rows") -> list[str]:
    return page.locator(f"{table} td[data-column={name}]").all_inner_texts()


def click_cell(page: Page, plot: Locator, row: int, col: int) -> None:
    """Click the centre of a drawn heatmap's cell (rows top down)."""
    plot.scroll_into_view_if_needed()
    rows, cols = plot.evaluate("element => [element.data[0].y.length, element.data[0].x.length]")
    box = plot.locator(".nsewdrag").bounding_box()
    page.mouse.click(box["x"] + (col + 0.5) * box["width"] / cols, box["y"] + (row + 0.5) * box["height"] / rows)


def test_home_lists_models_with_task_versions_and_headline(page: Page) -> None:
    page.goto("/dashboard/")
    row = page.locator("#models tr[data-model=digits]")
    expect(row).to_contain_text("classification")
    expect(row.locator("a.tag")).to_have_text(["v1", "v2"])
    expect(row).to_contain_text("accuracy")
    row.get_by_role("link", name="digits", exact=True).click()
    expect(page).to_have_url(re.compile(r"/dashboard/models/digits/versions/v\d$"))


def test_training_shows_epochs_curves_categories_and_runs_an_evaluation(page: Page) -> None:
    page.goto("/dashboard/models/digits/versions/v1")
    expect(page.locator("#epochs .tag")).to_have_text(["0", "1", "2"])
    expect(page.locator("#curves-plot")).to_have_attribute("data-drawn", "1")
    assert page.locator("#curves-plot .scatterlayer .trace").count() >= 2
    expect(page.locator("#shares-1-plot")).to_have_attribute("data-drawn", "1")
    assert page.locator("#shares-1-plot .barlayer .point").count() >= 3
    expect(page.locator("#results")).to_contain_text("v1-all")

    page.select_option("select[name=n_epoch]", "1")
    page.fill("input[name=result_name]", "from-browser")
    page.get_by_role("button", name="Request evaluation").click()
    job = page.locator("#jobs .job").first
    expect(job).to_have_attribute("data-status", re.compile("queued|running|succeeded"))
    expect(job).to_have_attribute("data-status", "succeeded", timeout=60_000)
    job.get_by_role("link", name="from-browser").click()
    expect(page.locator("h1")).to_contain_text("from-browser")


def test_evaluation_shows_metrics_categories_codes_heatmaps_and_hotspots(page: Page, store_data: StoreData) -> None:
    page.set_viewport_size({"width": 1400, "height": 900})
    page.goto(evaluation_url(store_data))
    expect(page.locator("#metrics tbody tr")).to_have_count(2)
    expect(page.locator("#metrics tr.selected")).to_contain_text("val")
    expect(page.locator("#categories .legend li")).to_have_count(6)
    groups = page.locator("#codes details.code-group")
    assert groups.count() >= 2
    for group in groups.all():
        counts = [int(c.replace(",", "")) for c in group.locator("td.num:nth-child(2)").all_inner_texts()]
        assert counts == sorted(counts, reverse=True)
        assert all(text.strip() for text in group.locator("td:nth-child(5)").all_inner_texts())  # recommended actions
    for name in ("confusion", "class_by_category", "class_by_error_code", "epoch_by_category"):
        plot = page.locator(f"[data-heatmap={name}] [data-figure]")
        expect(plot).to_have_attribute("data-drawn", "1")
        expect(plot.locator(".hm image")).to_have_count(1)
    expect(page.locator("#hotspots")).to_contain_text("cluster")
    expect(page.locator("#sample-rows")).to_contain_text(HOSTILE_ID)  # shown as text, never as markup
    assert page.locator("img[src=x]").count() == 0
    if os.environ.get("MLD_DASHBOARD_SCREENSHOT"):
        page.screenshot(path=SCREENSHOT, clip={"x": 0, "y": 0, "width": 1400, "height": 2350}, full_page=True)

    page.select_option("#selection select[name=epoch]", "0")
    expect(page).to_have_url(re.compile(r"epoch=0"))
    expect(page.locator("#metrics h2")).to_contain_text("epoch 0")
    expect(page.locator("#sample-count")).to_have_attribute("data-query", re.compile("dataset=val&epoch=0"))


def test_filters_sorting_paging_and_csv_export_of_the_sample_table(page: Page, store_data: StoreData) -> None:
    page.goto(evaluation_url(store_data))
    count = page.locator("#sample-count")
    everything = int(count.get_attribute("data-total"))
    page.select_option("#sample-filters select[name=category]", "operational_coverage")
    expect(count).to_have_attribute("data-query", re.compile("category=operational_coverage"))
    assert int(count.get_attribute("data-total")) < everything
    assert set(column(page, "category")) == {"operational_coverage"}

    page.locator("#codes a[data-filter]").first.click()  # a code of the most frequent ones
    code = page.locator("#sample-filters select[name=code]").input_value()
    expect(count).to_have_attribute("data-query", re.compile(f"code={code}"))
    expect(page.locator("#sample-filters select[name=category]")).to_have_value("")
    assert code and all(code in cell for cell in column(page, "error_codes"))

    page.locator("th a[data-sort=loss]").click()
    expect(page.locator("th a[data-sort=loss]")).to_contain_text("▼")
    losses = [float(v) for v in column(page, "loss")]
    assert losses == sorted(losses, reverse=True)

    page.select_option("#sample-filters select[name=code]", "")
    expect(count).not_to_have_attribute("data-query", re.compile("code="))
    page.select_option("#sample-filters select[name=page_size]", "25")
    expect(count).to_have_attribute("data-query", re.compile("page_size=25"))
    first_page = column(page, "input_id")
    page.locator("a[rel=next]").click()
    expect(count).to_contain_text("page 2 of")
    assert not set(first_page) & set(column(page, "input_id"))

    total = int(count.get_attribute("data-total"))
    with page.expect_download() as download:
        page.locator("#export-csv").click()
    rows = list(csv.reader(Path(download.value.path()).read_text().splitlines()))
    assert len(rows) == total + 1 and "loss" in rows[0]
    losses = [float(r[rows[0].index("loss")]) for r in rows[1:]]
    assert losses == sorted(losses, reverse=True)


def test_a_heatmap_cell_click_filters_the_samples(page: Page, store_data: StoreData) -> None:
    page.goto(evaluation_url(store_data))
    plot = page.locator("[data-heatmap=confusion] [data-figure]")
    expect(plot).to_have_attribute("data-drawn", "1")
    click_cell(page, plot, 3, 3)
    expect(page.locator("#sample-count")).to_have_attribute("data-query", re.compile("label=3&prediction=3"))
    assert set(column(page, "label")) == {"3"} and set(column(page, "prediction")) == {"3"}


def test_a_3d_result_draws_its_birds_eye_view_and_filters_by_any_heatmap(page: Page) -> None:
    page.goto("/dashboard/models/lidar/versions/v1/results/r")
    expect(page.locator("[data-heatmap=bev_errors] [data-figure]")).to_have_attribute("data-drawn", "1")
    expect(page.locator("#table-range")).to_be_visible()
    plot = page.locator("[data-heatmap=range_by_error_type] [data-figure]")
    expect(plot).to_have_attribute("data-drawn", "1")
    click_cell(page, plot, 0, 0)  # 0-20m x bkg
    count = page.locator("#sample-count")
    expect(count).to_have_attribute("data-query", re.compile(r"f\.range_bin=0-20m&f\.error_type=bkg"))
    expect(page.locator("[data-column-filter=error_type]")).to_contain_text("error_type = bkg")
    assert set(column(page, "error_type")) == {"bkg"}


def test_compare_shows_the_known_regression(page: Page, store_data: StoreData) -> None:
    page.goto("/dashboard/compare")
    for result in (store_data.v2_latest, store_data.v1_all):
        page.locator(f"#picker input[value$='/{result}']").check()
    page.get_by_role("button", name="Compare").click()
    accuracy = page.locator("#compare-metrics tr[data-dataset=val][data-metric=accuracy]")
    expect(accuracy.locator(".delta")).to_have_class(re.compile("worse"))
    expect(accuracy.locator(".delta")).to_contain_text("(-")
    section = page.locator(".compare-units")
    broken = int(section.locator(".broken-count").inner_text().replace(",", ""))
    fixed = int(section.locator(".fixed-count").inner_text().replace(",", ""))
    assert broken > fixed
    labels = column(page, "baseline_label", ".compare-units table.broken")
    predictions = column(page, "candidate_prediction", ".compare-units table.broken")
    assert labels.count("3") > len(labels) / 2 and predictions.count("8") > len(predictions) / 2
    expect(page.locator("#transitions-1-plot")).to_have_attribute("data-drawn", "1")


def test_sign_in_is_enforced_on_a_keyed_server(page: Page, keyed_server: ServerProcess) -> None:
    root = keyed_server.url
    samples = f"{root}/dashboard/api/samples/digits/v1/v1-all"
    page.goto(f"{root}/dashboard/models/digits/versions/v1")
    expect(page).to_have_url(re.compile(r"/dashboard/sign-in\?next="))
    assert page.request.get(samples).status == 401

    page.fill("input[name=key]", "mldbg_000000000000_" + "x" * 43)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#sign-in-error")).to_be_visible()

    page.fill("input[name=key]", keyed_server.create_key("browser"))
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{root}/dashboard/models/digits/versions/v1")
    (cookie,) = [c for c in page.context.cookies() if c["name"] == "mld_session"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    assert "mld_session" not in page.evaluate("document.cookie")
    assert page.request.get(samples).status == 200

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(f"{root}/dashboard/sign-in")
    assert page.request.get(samples).status == 401


def test_pages_load_everything_from_the_server(page: Page, store_data: StoreData, outside_requests: list[str]) -> None:
    guard = page.context.new_page()
    with pytest.raises(PlaywrightError):  # the guard itself: an outside request is caught and aborted
        guard.goto("http://example.invalid/")
    guard.close()
    assert outside_requests == ["http://example.invalid/"]
    outside_requests.clear()
    seen: list[str] = []
    page.on("request", lambda request: seen.append(request.url))
    page.goto(evaluation_url(store_data))
    expect(page.locator("[data-heatmap=confusion] [data-figure]")).to_have_attribute("data-drawn", "1")
    assert any(url.endswith(f"vendor/plotly-cartesian.min.js?v={__version__}") for url in seen)
    assert any(url.endswith(f"vendor/htmx.min.js?v={__version__}") for url in seen)
    assert all(url.startswith(page.url.split("/dashboard/")[0]) for url in seen)
