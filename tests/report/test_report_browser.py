"""The report in a real browser: Debian's Chromium, driven by selenium through the system
chromedriver (an explicit path, so Selenium Manager downloads nothing), loads the page from a
file:// URL with the network off. No console errors, every image and SVG is drawn with a size,
every section the contents list exists, and a full-page screenshot is kept as an artifact."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from axdnn.report import build_report

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
if not CHROMIUM.is_file() or not CHROMEDRIVER.is_file():
    pytest.skip(
        f"Chromium is not installed ({CHROMIUM} and {CHROMEDRIVER} are needed; on Debian: "
        "apt-get install chromium chromium-driver)",
        allow_module_level=True,
    )

from selenium.webdriver.chrome.options import Options  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402

FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-quic",
    "--proxy-server=127.0.0.1:9",  # a closed port: any network request would fail
    "--proxy-bypass-list=<-loopback>",
    "--window-size=1280,900",
]

SIZES_JS = """
const out = [];
for (const el of document.querySelectorAll('img, svg')) {
  if (el.tagName.toLowerCase() === 'svg' && el.parentElement.closest('svg')) continue;
  const r = el.getBoundingClientRect();
  out.push({tag: el.tagName.toLowerCase(), w: r.width, h: r.height,
            complete: el.tagName.toLowerCase() === 'img' ? el.complete && el.naturalWidth > 0
                                                          : true,
            section: (el.closest('section') || {}).id || null});
}
return out;
"""

CONTENTS_JS = """
const links = [...document.querySelectorAll('nav#contents a[href^="#"]')];
return links.map(a => {
  const id = decodeURIComponent(a.getAttribute('href').slice(1));
  const el = document.getElementById(id);
  return {id: id, text: a.textContent, found: !!el,
          tag: el ? el.tagName.toLowerCase() : null,
          height: el ? el.getBoundingClientRect().height : 0};
});
"""


@pytest.fixture(scope="module")
def report_page(run_folder, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("browser_report")
    return build_report(run_folder, folder / "report.html")


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    options = Options()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(str(CHROMEDRIVER))
    browser = webdriver.Chrome(service=service, options=options)
    try:
        browser.set_page_load_timeout(30)
        browser.execute_cdp_cmd("Network.enable", {})
        browser.execute_cdp_cmd(
            "Network.emulateNetworkConditions",
            {"offline": True, "latency": 0, "downloadThroughput": 0, "uploadThroughput": 0},
        )
        yield browser
    finally:
        browser.quit()


def _save_artifact(path: Path) -> None:
    folder = os.environ.get("AXDNN_TEST_ARTIFACTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, Path(folder) / path.name)


def test_report_renders_offline_in_chromium(driver, report_page, tmp_path):
    start = time.perf_counter()
    driver.get(report_page.resolve().as_uri())
    assert driver.execute_script("return document.readyState") == "complete"
    assert driver.title.startswith("axdnn report:")

    severe = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
    assert not severe, f"console errors: {severe}"

    sizes = driver.execute_script(SIZES_JS)
    svgs = [s for s in sizes if s["tag"] == "svg"]
    assert len(svgs) >= 10, f"expected the report's figures, found {len(svgs)} SVGs"
    empty = [s for s in sizes if not (s["w"] > 0 and s["h"] > 0 and s["complete"])]
    assert not empty, f"images or SVGs drawn without a size: {empty}"

    contents = driver.execute_script(CONTENTS_JS)
    assert len(contents) == len(driver.find_elements("css selector", "main > section.step"))
    missing = [c for c in contents if not (c["found"] and c["tag"] == "section" and c["height"])]
    assert not missing, f"contents entries without their section: {missing}"

    # the whole page, as one tall screenshot, for a human to look at
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1280, min(int(height) + 40, 16000))
    shot = tmp_path / "axdnn_report.png"
    assert driver.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
    _save_artifact(shot)
    driver.set_window_size(1280, 900)
    first = tmp_path / "axdnn_report_top.png"
    driver.execute_script("window.scrollTo(0, 0)")
    driver.save_screenshot(str(first))
    _save_artifact(first)
    assert time.perf_counter() - start < 20, "the browser check should stay fast"


def test_network_is_really_off(driver, tmp_path):
    """A page that asks for a remote image gets nothing back, and the failure shows in the
    console log: the report check above ran offline and would have seen such errors."""
    page = tmp_path / "probe.html"
    page.write_text('<!DOCTYPE html><img id="p" src="https://example.com/x.png" alt="">')
    driver.get(page.as_uri())
    time.sleep(0.3)
    loaded = driver.execute_script(
        "const i = document.getElementById('p'); return i.complete && i.naturalWidth > 0;"
    )
    assert not loaded
    # and the console log the report test reads does capture such failures
    errors = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
    assert any("example.com" in e.get("message", "") for e in errors), errors
