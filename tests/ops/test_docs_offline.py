"""/docs and /redoc on a network without a CDN: Chromium that can resolve no host name still lists the operations,
because Swagger UI and ReDoc come from the gateway itself."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from gateway.app import create_app
from simulators.peer import serve_in_thread
from tests.ops.ops_support import base_settings, build_runtime, make_store
from tests.ops.test_ops_browser import CHROMEDRIVER, CHROMIUM, FLAGS, chromium

# Every host name fails to resolve (as a CDN does on an intranet without one); the gateway is reached by address.
OFFLINE = "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"


@pytest.fixture
def offline_browser() -> Iterator[WebDriver]:
    chromium().quit()  # the same checks that Chromium and its driver are installed
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, OFFLINE):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def gateway_url(tmp_path: Path) -> Iterator[str]:
    settings = base_settings(tmp_path)
    app = create_app(settings, runtime=build_runtime(settings, make_store("sqlite", tmp_path, "docs")))
    with serve_in_thread(app, name="docs-offline-gateway") as url:
        yield url


def test_the_docs_pages_load_nothing_from_outside_the_gateway(gateway_url: str) -> None:
    for page in ("/docs", "/redoc"):
        html = httpx.get(f"{gateway_url}{page}", timeout=10).text
        assert "cdn.jsdelivr.net" not in html and "fastapi.tiangolo.com" not in html and "fonts.googleapis" not in html
        assert "/static-offline-docs/" in html
    script = httpx.get(f"{gateway_url}/static-offline-docs/swagger-ui-bundle.js", timeout=10)
    assert script.status_code == 200 and "SwaggerUIBundle" in script.text[:2000]


def test_swagger_ui_lists_the_operations_with_the_network_off(offline_browser: WebDriver, gateway_url: str) -> None:
    offline_browser.get(f"{gateway_url}/docs")
    reached_cdn = offline_browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch('https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui.css', {mode: 'no-cors'})"
        ".then(() => done(true), () => done(false));")
    assert reached_cdn is False  # the browser really is offline
    wait = WebDriverWait(offline_browser, 60)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".opblock"))
    paths = {e.get_attribute("data-path") for e in offline_browser.find_elements(By.CSS_SELECTOR,
                                                                                   ".opblock-summary-path")}
    assert {"/api/v1/deliveries/replay", "/api/v1/tickets", "/healthz"} <= paths


def test_redoc_lists_the_operations_with_the_network_off(offline_browser: WebDriver, gateway_url: str) -> None:
    offline_browser.get(f"{gateway_url}/redoc")
    wait = WebDriverWait(offline_browser, 60)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "[data-section-id^='operation/']"))
    assert "/api/v1/deliveries/replay" in offline_browser.find_element(By.TAG_NAME, "body").get_attribute(
        "textContent")
