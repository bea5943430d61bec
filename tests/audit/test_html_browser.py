"""The HTML report is one self-contained file that opens in headless Chromium without errors."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.audit.helpers import SAMPLE

CHROMIUM = os.environ.get("GEARSHIFT_TEST_CHROMIUM") or shutil.which("chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run",
]  # fmt: skip


def test_html_is_self_contained(
    tmp_path: Path, run_audit: Callable[..., tuple[int, str, str]]
) -> None:
    out = tmp_path / "audit.html"
    code, _, err = run_audit(str(SAMPLE), "--format", "html", "--out", str(out))
    assert code == 0, err
    html = out.read_text(encoding="utf-8")
    # nothing fetched from anywhere: no external scripts, styles, fonts or images
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "<script" not in html
    assert html.count("<svg") >= 3
    assert "Which prompts moved, and why" in html and "quality_tolerance:" in html


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (GEARSHIFT_TEST_CHROMIUM)")
def test_html_report_opens_in_headless_chromium_without_errors(
    tmp_path: Path, run_audit: Callable[..., tuple[int, str, str]]
) -> None:
    from playwright.sync_api import sync_playwright

    out = tmp_path / "audit.html"
    assert run_audit(str(SAMPLE), "--format", "html", "--out", str(out))[0] == 0
    errors: list[str] = []
    requests: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(out.as_uri())
            assert page.title() == "gearshift audit"
            # the plots rendered: two curve series, one bar pair per feature, a share bar
            assert page.locator("polyline.series").count() == 2
            assert page.locator("svg rect.bar-routed").count() >= 10
            assert page.locator("rect.share").count() >= 1
            box = page.locator("polyline.series").first.bounding_box()
            assert box is not None and box["width"] > 100
            assert "savings" in page.locator(".cards").inner_text()
        finally:
            browser.close()
    assert errors == []
    assert requests == [out.as_uri()]  # the file itself and nothing else
