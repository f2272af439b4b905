"""The dashboard in headless Chromium: counts move after a push, an alert on its panel, the ticket page, a replay by an
operator, a viewer."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from gateway.app import create_app
from simulators.peer import DEV_CREDENTIALS, serve_in_thread
from tests.ops.ops_support import (
    COMPLAINANT,
    TOKENS,
    Receiver,
    base_settings,
    build_runtime,
    city_complaint,
    delivery_file_for,
    fixture_payload,
    make_store,
    receiver,
)

CHROMIUM = os.environ.get("HIG_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("HIG_CHROMEDRIVER", "/usr/bin/chromedriver")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
         "--window-size=1400,1600")


def chromium() -> WebDriver:
    # Not skipped when missing: CI installs Debian's chromium and chromium-driver (.ci/run).
    for path in (CHROMIUM, CHROMEDRIVER):
        assert shutil.which(path), f"{path} is missing: apt-get install chromium chromium-driver"
    os.environ.setdefault("SE_AVOID_STATS", "true")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    driver = chromium()
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def peer() -> Iterator[Receiver]:
    with receiver() as r:
        r.accept = False  # the national platform refuses at first: the forward is dead-lettered
        yield r


@pytest.fixture
def gateway_url(tmp_path: Path, peer: Receiver) -> Iterator[str]:
    """The whole gateway (API, dashboard, delivery workers) on loopback, in a thread, on SQLite."""
    settings = base_settings(tmp_path, workers=True, delivery_file=delivery_file_for(tmp_path, peer.url))
    app = create_app(settings, runtime=build_runtime(settings, make_store("sqlite", tmp_path, "browser")))
    with serve_in_thread(app, name="ops-browser-gateway") as url:
        yield url


def push(gateway_url: str, no: str) -> str:
    response = httpx.post(f"{gateway_url}/api/v1/inbound/city-12345-rest/tickets",
                          content=json.dumps(city_complaint(no), ensure_ascii=False).encode("utf-8"),
                          headers={"Content-Type": "application/json; charset=utf-8",
                                   "X-Api-Key": DEV_CREDENTIALS["PARTNER_CITY12345_API_KEY"]}, timeout=10)
    assert response.status_code in (200, 201, 202), response.text
    ticket_id: str = response.json()["ticket_id"]
    return ticket_id


def sign_in(driver: WebDriver, gateway_url: str, role: str, then: str = "/ops?refresh=2") -> None:
    driver.get(f"{gateway_url}/ops/login?next={then}")
    driver.find_element(By.ID, "token").send_keys(TOKENS[role])
    driver.find_element(By.ID, "login").click()
    WebDriverWait(driver, 30).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, f'#who[data-role="{role}"]') and "/ops/login" not in d.current_url)


def cell(driver: WebDriver, css: str) -> str:
    # Read in one script call: the dashboard swaps its live section's HTML every two seconds, so an element
    # found by one WebDriver call can be stale by the next.
    text = driver.execute_script(
        "const e = document.querySelector(arguments[0]); return e ? e.textContent.trim() : '';", css)
    return str(text)


def click(wait: WebDriverWait[WebDriver], css: str) -> None:
    """Click the element, finding it again when a live refresh replaced it between finding and clicking."""
    def clicked(driver: WebDriver) -> bool:
        driver.find_element(By.CSS_SELECTOR, css).click()
        return True
    wait.until(clicked)


def test_ops_watch_a_push_open_its_ticket_replay_it_and_a_viewer_sees_masked_data(
        browser: WebDriver, gateway_url: str, peer: Receiver) -> None:
    wait = WebDriverWait(browser, 40, poll_frequency=0.2,
                         ignored_exceptions=(NoSuchElementException, StaleElementReferenceException))
    sign_in(browser, gateway_url, "operator")
    assert "运行总览" in browser.page_source
    assert cell(browser, "#adapter-city-12345-rest .received") == "0"

    ticket_id = push(gateway_url, "KL-BROWSER-1")
    # The page refreshes itself: the count moves, then the refused forward shows as a dead letter.
    wait.until(lambda d: cell(d, "#adapter-city-12345-rest .received") == "1")
    wait.until(lambda d: cell(d, "#destination-national .dead") == "1")
    assert cell(browser, "#total-dead") == "1"
    # The dead letter raised an alert: the 当前告警 panel names it, in Chinese, as 严重 (critical).
    alert_row = '#alerts tr[data-key="dead_letters:national"]'
    wait.until(lambda d: "通道 national 有 1 条死信" in cell(d, alert_row))
    assert cell(browser, f"{alert_row} .chip") == "严重"

    click(wait, f'#dead-letters a[href="/ops/tickets/{ticket_id}"]')
    wait.until(lambda d: d.find_elements(By.ID, "timeline"))
    kinds = [li.get_attribute("data-kind") for li in browser.find_elements(By.CSS_SELECTOR, "#timeline li")]
    assert {"received", "stored", "attempt", "dead"} <= set(kinds)
    assert cell(browser, "#complainant-name") == COMPLAINANT["name"]  # an operator sees the complainant

    peer.accept = True  # the platform is fixed; the operator replays from the page
    [button] = browser.find_elements(By.CSS_SELECTOR, "#deliveries button[id^=replay-]")
    button.click()
    wait.until(lambda d: "已重新投递" in cell(d, "#flash"))

    def delivered(driver: WebDriver) -> bool:
        driver.refresh()
        return bool(driver.find_elements(By.CSS_SELECTOR, '#deliveries tr[data-state="delivered"]'))

    wait.until(delivered)
    labels = [li.text for li in browser.find_elements(By.CSS_SELECTOR, "#timeline li")]
    assert any("运维操作：重新投递" in text for text in labels)
    assert any("第2次：成功" in text for text in labels)

    browser.find_element(By.CSS_SELECTOR, "header form button").click()  # sign out
    wait.until(lambda d: d.find_elements(By.ID, "token") and not d.find_elements(By.ID, "who"))
    sign_in(browser, gateway_url, "viewer", then=f"/ops/tickets/{ticket_id}")
    wait.until(lambda d: d.find_elements(By.ID, "complainant-name"), message=f"no complainant on {browser.current_url}")
    assert cell(browser, "#who").endswith("（查看员）")
    name, phone = cell(browser, "#complainant-name"), cell(browser, "#complainant-phone")
    assert name.startswith("王") and "*" in name and name != COMPLAINANT["name"]
    assert "****" in phone
    source = browser.page_source
    for clear in (COMPLAINANT["name"], "13985012345", COMPLAINANT["id_number"], "环城西路9号"):
        assert clear not in source
    assert not browser.find_elements(By.CSS_SELECTOR, "button[id^=replay-]")


def _push_payload(gateway_url: str, payload: dict[str, object]) -> dict[str, object]:
    response = httpx.post(f"{gateway_url}/api/v1/inbound/city-12345-rest/tickets",
                          content=json.dumps(payload, ensure_ascii=False).encode("utf-8"),
                          headers={"Content-Type": "application/json; charset=utf-8",
                                   "X-Api-Key": DEV_CREDENTIALS["PARTNER_CITY12345_API_KEY"]}, timeout=10)
    assert response.status_code in (200, 201, 202, 422), response.text
    answer: dict[str, object] = response.json()
    return answer


def _lines(driver: WebDriver, css: str) -> int:
    """How many lines the text of an element takes as the browser lays it out (one box per line)."""
    found = driver.execute_script(
        "const e = document.querySelector(arguments[0]); if (!e) return -1;"
        "const r = document.createRange(); r.selectNodeContents(e);"
        "return new Set(Array.from(r.getClientRects()).map(b => Math.round(b.top))).size;", css)
    return int(found)


def test_the_small_things_an_operator_met_hold_in_the_browser(browser: WebDriver, gateway_url: str) -> None:
    wait = WebDriverWait(browser, 40, poll_frequency=0.2,
                         ignored_exceptions=(NoSuchElementException, StaleElementReferenceException))
    first = push(gateway_url, "KL-BROWSER-SMALL-1")
    assert push(gateway_url, "KL-BROWSER-SMALL-1") == first  # the partner pushes the same ticket again
    failed = _push_payload(gateway_url, city_complaint("KL-BROWSER-SMALL-2", appealTypeCode="99"))
    assert failed.get("quarantine_id")

    # 累计接收 and the chart's legend count the same tickets: one ticket and one quarantined payload, not the repeat.
    sign_in(browser, gateway_url, "operator")
    wait.until(lambda d: cell(d, "#total-received") == "2")
    assert cell(browser, "#chart-intake") == "2"

    # The search page lists the newest tickets before any search.
    browser.get(f"{gateway_url}/ops/tickets")
    assert cell(browser, "#results-title") == "最新工单（1）"
    assert [r.get_attribute("data-ticket") for r in browser.find_elements(By.CSS_SELECTOR, "tr.result")] == [first]

    # The ticket page: the gateway's own times (kept in UTC) in China time beside the partner's; the deadline's
    # basis in Chinese.
    browser.get(f"{gateway_url}/ops/tickets/{first}")
    wait.until(lambda d: d.find_elements(By.ID, "timeline"))
    shown = {li.get_attribute("data-kind"): li.find_element(By.TAG_NAME, "time").text
             for li in browser.find_elements(By.CSS_SELECTOR, "#timeline li")}
    assert shown["received"] == "2024-03-15 10:21:07"  # the partner's own +08:00 time, as it wrote it
    rows = httpx.get(f"{gateway_url}/api/v1/deliveries", params={"ticket_id": first, "destination": "national"},
                     headers={"Authorization": f"Bearer {TOKENS['viewer']}"}, timeout=10).json()
    stored = datetime.fromisoformat(rows[0]["created_at"]).astimezone(ZoneInfo("Asia/Shanghai"))
    assert shown["stored"] == stored.strftime("%Y-%m-%d %H:%M:%S")
    deadlines = cell(browser, "#deadlines")
    assert "个工作日" in deadlines and "working days" not in deadlines

    # The quarantine list: a 退单 is 已退单 without a button; an open one's 重新映射 stays on one line, even narrow.
    returned = _push_payload(gateway_url, fixture_payload("city-12345-rest", "04-help-request-returned"))
    assert returned.get("quarantine_id")
    browser.set_window_size(900, 1200)
    browser.get(f"{gateway_url}/ops/quarantine")
    returned_row = f"#quarantine-{returned['quarantine_id']}"
    assert cell(browser, f"{returned_row} .state").startswith("已退单")
    assert not browser.find_elements(By.CSS_SELECTOR, f"{returned_row} button")
    open_row = f"#quarantine-{failed['quarantine_id']}"
    assert cell(browser, f"{open_row} .state") == "待处理"
    assert "业务类型：代码不在对照表中，无法对应国家标准代码" in cell(browser, open_row)  # the problem, in Chinese
    assert cell(browser, f"{open_row} button.act") == "重新映射"
    assert _lines(browser, f"{open_row} button.act") == 1
