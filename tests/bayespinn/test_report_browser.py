"""The HTML report in a real browser: headless Chromium (Debian's `chromium`) opens it offline.

A report fails if the browser logs a console or page error, requests anything but `file:`/`data:`
URLs, shows an image that did not load, or renders a blank page; it must also stay under 5 MB.
A second test injects such faults into a copy of the report and checks that each one is caught.

Outside CI the tests skip when Chromium or Playwright is missing; `.ci/run` installs both and sets
BAYESPINN_BROWSER_TEST=required, which turns the skip into a failure.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from urllib.parse import urlsplit

import matplotlib.image as mpimg
import numpy as np
import pytest

from bayespinn.report import write_report
from tests.bayespinn.test_report import CARD, TRUTH, _diagnostics, _idata, _meta, _table

CHROMIUM = Path("/usr/bin/chromium")
# Chromium flags that keep it quiet and offline on a closed network, run as root in a container.
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND",
]
MAX_BYTES = 5 * 1024 * 1024
LOCAL_SCHEMES = ("file", "data")
VERDICTS = ("results can be trusted", "do not trust these results")


def _sync_playwright():
    """Playwright's sync entry point, or skip (fail where CI requires the browser test)."""
    required = os.environ.get("BAYESPINN_BROWSER_TEST") == "required"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        reason = "Playwright is not installed (pip install -e '.[test]')"
    else:
        if CHROMIUM.exists():
            return sync_playwright
        reason = f"{CHROMIUM} is missing (apt-get install chromium; .ci/run installs it)"
    if required:
        pytest.fail(f"BAYESPINN_BROWSER_TEST=required but {reason}")
    pytest.skip(reason)


def _screenshot_problems(png: bytes) -> list[str]:
    pixels = mpimg.imread(io.BytesIO(png), format="png")
    height, width = pixels.shape[:2]
    problems = []
    if width < 400 or height < 400:
        problems.append(f"screenshot is only {width}x{height} pixels")
    if float(np.std(pixels[..., :3])) < 0.01:
        problems.append("screenshot is a single colour")
    return problems


def browser_problems(path: Path, screenshot: Path | None = None) -> list[str]:
    """Everything wrong with the report at `path` when headless Chromium renders it offline."""
    path = Path(path).resolve()
    problems = []
    size = path.stat().st_size
    if size >= MAX_BYTES:
        problems.append(f"report is {size / 1e6:.1f} MB, over the 5 MB limit")
    sync_playwright = _sync_playwright()

    def on_console(message):
        if message.type == "error":
            problems.append(f"console error: {message.text}")

    def on_request(request):
        if urlsplit(request.url).scheme not in LOCAL_SCHEMES:
            problems.append(f"network request: {request.method} {request.url}")

    def route(route):
        # Nothing leaves the machine: every non-local request is aborted after being recorded.
        if urlsplit(route.request.url).scheme in LOCAL_SCHEMES:
            route.continue_()
        else:
            route.abort()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        try:
            context = browser.new_context(service_workers="block", viewport={"width": 1280, "height": 900})
            context.set_default_timeout(30_000)
            context.route("**/*", route)
            page = context.new_page()
            page.on("console", on_console)
            page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
            page.on("request", on_request)
            page.on("websocket", lambda ws: problems.append(f"network request: websocket {ws.url}"))
            page.goto(path.as_uri(), wait_until="load")
            images = page.evaluate(
                "() => Array.from(document.images, i => ({src: i.src.slice(0, 60), ok: i.complete"
                " && i.naturalWidth > 0}))"
            )
            text = page.evaluate("() => document.body ? document.body.innerText : ''")
            headings = page.evaluate(
                "() => Array.from(document.querySelectorAll('h1, h2'), h => h.innerText)"
            )
            png = page.screenshot(full_page=True)
        finally:
            browser.close()

    if not images:
        problems.append("no image on the page")
    problems += [f"image did not load: {image['src']}" for image in images if not image["ok"]]
    if len(text.strip()) < 500:
        problems.append(f"page is nearly blank: {len(text.strip())} characters of text")
    if not any(verdict in h for h in headings for verdict in VERDICTS):
        problems.append(f"no verdict heading among {headings}")
    if "Posterior" not in headings:
        problems.append(f"no 'Posterior' table heading among {headings}")
    if screenshot is not None:
        screenshot.write_bytes(png)
    problems += _screenshot_problems(png)
    return problems


@pytest.fixture(scope="module")
def report_path(tmp_path_factory) -> Path:
    idata = _idata()
    path = tmp_path_factory.mktemp("browser") / "report.html"
    return write_report(path, idata, _table(idata, TRUTH), _diagnostics([]), _meta(TRUTH, CARD))


def test_report_renders_offline_in_chromium_without_errors(report_path, tmp_path):
    screenshot = tmp_path / "report.png"
    assert browser_problems(report_path, screenshot) == []
    assert screenshot.stat().st_size > 10_000


def test_browser_check_catches_network_requests_console_errors_and_broken_images(report_path, tmp_path):
    faults = '<img alt="remote" src="https://example.com/x.png"><script>console.error("boom")</script>'
    broken = tmp_path / "broken.html"
    broken.write_text(report_path.read_text(encoding="utf-8").replace("</body>", faults + "</body>"))
    assert faults in broken.read_text()
    problems = browser_problems(broken)
    assert any(p.startswith("network request:") and "example.com/x.png" in p for p in problems), problems
    assert any(p.startswith("console error:") and "boom" in p for p in problems), problems
    assert any(p.startswith("image did not load:") and "example.com" in p for p in problems), problems


def test_blank_or_tiny_screenshots_are_caught():
    buffer = io.BytesIO()
    mpimg.imsave(buffer, np.ones((50, 50, 3)), format="png")
    assert len(_screenshot_problems(buffer.getvalue())) == 2
