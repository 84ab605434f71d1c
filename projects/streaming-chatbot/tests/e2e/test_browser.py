"""The chat page in a real headless Chromium: type a question, watch the answer stream in."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from streaming_chatbot.app import create_app
from streaming_chatbot.settings import Settings
from tests.conftest import skip_or_fail
from tests.live_server import serve

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


@pytest.fixture(scope="module")
def base_url(make_settings: Callable[..., Settings]) -> Iterator[str]:
    """The page sends no max_tokens, so the service's default bounds its answer: 512 tokens
    sampled at temperature 1 ran past a minute on a busy 2-core machine; 48 still stream in
    many pieces."""
    with serve(create_app(make_settings(default_max_tokens=48))) as url:
        yield url


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
