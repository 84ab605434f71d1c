"""The chat page in a real headless Chromium: type a question, watch the answer stream in."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import skip_or_fail

pytestmark = pytest.mark.browser

# Flags for a sandboxed CI machine with no network and no GPU.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def chromium() -> str:
    for candidate in (os.environ.get("CHROMIUM"), shutil.which("chromium"), "/usr/bin/chromium"):
        if candidate and Path(candidate).is_file():
            return candidate
    skip_or_fail("no Chromium (apt-get install chromium, or set CHROMIUM)", "REQUIRE_BROWSER")
    raise AssertionError("unreachable")


def test_a_typed_question_gets_a_streamed_answer(base_url: str) -> None:
    from playwright.sync_api import sync_playwright

    executable = chromium()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(base_url + "/")
            assert page.title() == "streaming-chatbot"
            page.fill("#prompt", "What is the capital of France?")
            page.press("#prompt", "Enter")

            page.wait_for_selector(".message.user")
            answer = page.wait_for_selector('.message.assistant[data-done="true"]', timeout=60_000)
            assert answer is not None
            # The page samples (temperature 1), so the words vary: any answer will do.
            assert answer.inner_text().strip()
            # Rendered piece by piece as the tokens arrived, not in one go at the end.
            assert int(answer.get_attribute("data-chunks") or 0) > 2
            assert page.inner_text("#status") == ""
        finally:
            browser.close()
