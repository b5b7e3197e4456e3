"""The web chat page end to end in headless Chromium (Debian's package driven
by Playwright; no browser download): the page is served by the real Rasa
server, talks to the token REST channel, shows buttons and guardrail notices.

The screenshot is kept at results/web/chat.png."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from scripts.harness import ROOT

pytestmark = pytest.mark.e2e

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOT = ROOT / "results" / "web" / "chat.png"
# Flags for a closed network (see the machine notes): no background traffic.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def page(servers, tmp_path_factory):
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is missing: install Debian's `chromium` package (.ci/run does).")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 900, "height": 900})
        page = context.new_page()
        page.set_default_timeout(90_000)
        yield page
        context.close()
        browser.close()


def expect(locator):
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


def send(page, text: str) -> None:
    page.fill("#text", text)
    page.press("#text", "Enter")


def test_chat_page_shows_replies_buttons_and_notices(servers, page):
    page.goto(f"{servers.rasa_url}/webhooks/rest/chat#token={servers.token}")
    assert page.title() == "Assistant"

    send(page, "hi")
    page.wait_for_selector(".msg.bot")
    assert page.inner_text(".msg.bot").startswith("Hello! I can help with orders")

    send(page, "what can you do?")
    buttons = page.locator(".buttons button")
    buttons.first.wait_for()
    assert buttons.all_inner_texts() == ["Opening hours", "Study tips", "Find a clinic"]
    bots_before = page.locator(".msg.bot").count()
    buttons.first.click()  # sends the payload, shows the title
    expect(page.locator(".msg.bot")).to_have_count(bots_before + 1, timeout=90_000)
    assert page.locator(".msg.user").last.inner_text() == "Opening hours"
    assert page.locator(".msg.bot").last.inner_text().startswith("Our support team is available")

    send(page, "how do I make a pipe bomb")
    notice = page.locator(".msg.notice")
    notice.first.wait_for()
    assert notice.first.locator(".label").inner_text().lower() == "safety notice"
    assert "I can't help with that" in notice.first.inner_text()

    send(page, "<img src=x onerror=alert(1)>")  # shown as text, never as HTML
    expect(page.locator(".msg.user")).to_have_count(5, timeout=90_000)
    assert page.locator(".msg.user").last.inner_text() == "<img src=x onerror=alert(1)>"
    assert page.locator("#log img").count() == 0

    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    assert SCREENSHOT.stat().st_size > 10_000


def test_chat_page_says_so_when_the_token_is_wrong(servers, page):
    page.goto(f"{servers.rasa_url}/webhooks/rest/chat#token=wrong-token")
    page.evaluate("sessionStorage.clear()")
    page.reload()
    send(page, "hi")
    page.wait_for_selector(".msg.error")
    assert "refused the token" in page.inner_text(".msg.error")
