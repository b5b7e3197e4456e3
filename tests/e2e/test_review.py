"""The review page end to end: conversations replayed through the real REST channel
(scripts/replay.py), the page and its API served by the real Rasa server, rated in
headless Chromium with the keyboard, kept across a server restart, and exported into
files that `rasa data validate` accepts. Screenshots: results/web/review*.png."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Dict

import pytest
import requests
import yaml

from scripts.harness import BIN, REVIEW_SECRET, ROOT
from tests.e2e.test_web_chat import CHROMIUM, CHROMIUM_ARGS, expect

pytestmark = pytest.mark.e2e

SCRIPT = {"Authorization": f"Bearer {REVIEW_SECRET}", "X-Reviewer": "script"}
SHOTS = ROOT / "results" / "web"
CONVERSATIONS = ROOT / "tests" / "data" / "review_conversations.txt"


@pytest.fixture(scope="module")
def replayed(servers) -> str:
    """The sender-id prefix of the replayed conversations (PREFIX-1 ... PREFIX-4)."""
    prefix = f"review-{uuid.uuid4().hex[:8]}"
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "replay.py"), str(CONVERSATIONS),
                           "--url", servers.rasa_url, "--token", servers.token, "--prefix", prefix],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "replayed 4 conversation(s), 8 message(s)" in done.stdout
    return prefix


def url(servers, path: str = "") -> str:
    return f"{servers.rasa_url}/webhooks/review/{path}"


def test_without_the_review_secret_nothing_is_shown(servers, replayed):
    page = requests.get(url(servers), timeout=30)
    assert page.status_code == 401 and "Review secret" in page.text and replayed not in page.text
    chat_token = {"Authorization": f"Bearer {servers.token}", "X-Reviewer": "chat user"}
    wrong = {"Authorization": "Bearer not-the-review-secret-at-all", "X-Reviewer": "x"}
    for headers in ({}, chat_token, servers.auth, wrong, {"Authorization": f"Bearer {REVIEW_SECRET}"}):
        for path in ("api/conversations", f"api/conversations/{replayed}-2"):
            answer = requests.get(url(servers, path), headers=headers, params={"token": servers.token}, timeout=30)
            assert answer.status_code == 401 and replayed not in answer.text, (headers, path)
        rating = {"conversation_id": f"{replayed}-1", "turn": 1, "target": "reply", "rating": "good"}
        assert requests.post(url(servers, "api/ratings"), json=rating, headers=headers, timeout=30).status_code == 401
    login = requests.post(url(servers, "login"), json={"secret": servers.token, "reviewer": "chat user"}, timeout=30)
    assert login.status_code == 401 and "review_session" not in login.headers.get("set-cookie", "")


def test_bad_input_gets_a_clear_4xx_never_a_500(servers, replayed):
    def post(body, headers: Dict[str, str] = SCRIPT) -> requests.Response:
        data = body if isinstance(body, bytes) else None
        return requests.post(url(servers, "api/ratings"), data=data, json=None if data else body,
                             headers={**headers, "Content-Type": "application/json"}, timeout=30)

    one = {"conversation_id": f"{replayed}-1", "turn": 1, "target": "reply"}
    cases = [
        (post(b"{not json"), 400, "not valid JSON"),
        (post({**one, "turn": "1", "rating": "good"}), 400, "turn number"),
        (post({**one, "rating": ["good"]}), 400, "rating"),
        (post({**one, "target": "intent", "rating": "order_pizza"}), 400, "not an intent of the domain"),
        (post({**one, "target": "rail", "rating": "false_alarm", "rail": "no_such_rail"}), 400, "names the rail"),
        (post({**one, "conversation_id": "nobody-ever", "rating": "good"}), 404, "no conversation"),
        (post({**one, "turn": 99, "rating": "good"}), 404, "has 2 turn(s), not 99"),
        (post({**one, "rating": "good", "note": "x" * 20_000}), 413, "too large"),
        (
            requests.get(url(servers, "api/conversations"), headers=SCRIPT, params={"colour": "red"}, timeout=30),
            400,
            "unknown filter",
        ),
        (
            requests.get(url(servers, "api/conversations"), headers=SCRIPT, params={"page": "0"}, timeout=30),
            400,
            "page number",
        ),
        (
            requests.get(url(servers, "api/conversations/nobody-ever"), headers=SCRIPT, timeout=30),
            404,
            "no conversation",
        ),
        (requests.post(url(servers, "login"), data=b"\xff\xfe", timeout=30), 400, "UTF-8"),
        (
            requests.post(url(servers, "login"), json={"secret": REVIEW_SECRET, "reviewer": "<script>"}, timeout=30),
            400,
            "must be your name",
        ),
    ]
    for answer, status, message in cases:
        assert answer.status_code == status and message in answer.json()["error"], (answer.status_code, answer.text)


def test_a_session_changes_nothing_without_its_csrf_token(servers, replayed):
    session = requests.Session()
    assert session.post(url(servers, "login"), json={"secret": REVIEW_SECRET, "reviewer": "Cy"}, timeout=30).ok
    page = session.get(url(servers), timeout=30)
    csrf = re.search(r'name="review-csrf" content="([0-9a-f]+)"', page.text).group(1)
    assert session.get(url(servers, "api/conversations"), timeout=30).status_code == 200
    rating = {"conversation_id": f"{replayed}-1", "turn": 1, "target": "reply", "rating": "good"}
    assert session.post(url(servers, "api/ratings"), json=rating, timeout=30).status_code == 401
    assert session.post(url(servers, "api/ratings"), json=rating, headers={"X-Review-Csrf": "0" * 40},
                        timeout=30).status_code == 401
    stored = session.post(url(servers, "api/ratings"), json=rating, headers={"X-Review-Csrf": csrf}, timeout=30)
    assert stored.status_code == 200 and stored.json()["reviewer"] == "Cy"
    removed = session.delete(url(servers, "api/ratings"), json=rating, headers={"X-Review-Csrf": csrf}, timeout=30)
    assert removed.json() == {"deleted": True}


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is missing: install Debian's `chromium` package (.ci/run does).")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def sign_in(browser, servers, width: int, name: str = "Ana"):
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    page.set_default_timeout(60_000)
    answer = page.goto(url(servers))
    assert answer.status == 401 and page.locator("#conversations").count() == 0
    page.fill("#reviewer", name)
    page.fill("#secret", REVIEW_SECRET)
    page.press("#secret", "Enter")
    page.wait_for_selector("#conversations")
    return context, page


def turn(page, number: int):
    return page.locator(f".turn[data-turn='{number}']")


def test_reviewers_rate_with_the_keyboard_and_nothing_is_lost_on_restart(servers, replayed, browser):
    SHOTS.mkdir(parents=True, exist_ok=True)
    context, page = sign_in(browser, servers, 1280)
    page.check("#filters input[name=model]")
    moon = page.locator(f".conversation[data-id='{replayed}-2']")
    moon.wait_for()
    # the filtered list replaces the whole one when its answer arrives (expect waits for it)
    expect(page.locator(f".conversation[data-id='{replayed}-1']")).to_have_count(0)  # no model answer in it
    moon.click()
    expect(turn(page, 1)).to_have_attribute("data-outcome", "sent")
    assert "moon" in turn(page, 1).locator(".user").inner_text()

    # Turn 1 (the model's own words, and wrong): w, then the corrected reply, saved with Ctrl+Enter.
    page.keyboard.press("w")
    expect(turn(page, 1).locator("button.rate.wrong")).to_have_attribute("aria-pressed", "true")
    page.keyboard.press("e")
    page.keyboard.type("The Moon is Earth's only natural satellite.")
    page.keyboard.press("Control+Enter")
    expect(page.locator("#status")).to_contain_text("turn 1 reply = wrong")
    # Turn 2: j, then g; then i and the correct intent.
    page.keyboard.press("Escape")
    page.keyboard.press("j")
    page.keyboard.press("g")
    expect(turn(page, 2).locator("button.rate.good")).to_have_attribute("aria-pressed", "true")
    page.keyboard.press("i")
    assert page.evaluate("document.activeElement.className") == "intent-select"
    page.select_option(".turn[data-turn='2'] .intent-select", "bot_challenge")
    expect(page.locator("#status")).to_contain_text("turn 2 intent = bot_challenge")

    # The walk with the dog: the triage question was a false alarm of the emergency classifier.
    page.uncheck("#filters input[name=model]")
    page.check("#filters input[name=triage]")
    page.locator(f".conversation[data-id='{replayed}-3']").click()
    classifier = turn(page, 1).locator("button.rate.false_alarm[data-rail='emergency_classifier']")
    classifier.click()
    expect(classifier).to_have_attribute("aria-pressed", "true")
    page.screenshot(path=str(SHOTS / "review.png"), full_page=True)

    servers.restart_rasa(0)  # ratings live in their own table, not in the server
    page.reload()
    page.wait_for_selector("#conversations")
    page.check("#filters input[name=triage]")
    page.locator(f".conversation[data-id='{replayed}-3']").click()
    expect(turn(page, 1).locator("button.rate.false_alarm[data-rail='emergency_classifier']")).to_have_attribute(
        "aria-pressed", "true")
    page.uncheck("#filters input[name=triage]")
    page.check("#filters input[name=model]")
    page.locator(f".conversation[data-id='{replayed}-2']").click()
    expect(turn(page, 1).locator("button.rate.wrong")).to_have_attribute("aria-pressed", "true")
    expect(turn(page, 1).locator("textarea.corrected")).to_have_value("The Moon is Earth's only natural satellite.")
    expect(turn(page, 2).locator("button.rate.good")).to_have_attribute("aria-pressed", "true")
    expect(turn(page, 2).locator(".intent-select")).to_have_value("bot_challenge")
    context.close()

    stored = requests.get(url(servers, f"api/conversations/{replayed}-2"), headers=SCRIPT, timeout=30).json()
    mine = {(r["turn"], r["target"]): r for r in stored["ratings"] if r["reviewer"] == "Ana"}
    assert mine[(1, "reply")]["rating"] == "wrong" and mine[(1, "reply")]["llm_outcome"] == "sent"
    assert mine[(2, "intent")]["rating"] == "bot_challenge" and mine[(2, "reply")]["rating"] == "good"


def test_the_page_works_at_375_pixels(servers, replayed, browser):
    context, page = sign_in(browser, servers, 375, name="Bo")
    assert page.evaluate("document.documentElement.scrollWidth") <= 375  # nothing wider than the screen
    page.locator(f".conversation[data-id='{replayed}-4']").click()
    expect(page.locator("#list-pane")).to_be_hidden()
    expect(turn(page, 1)).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    page.screenshot(path=str(SHOTS / "review-375.png"), full_page=True)
    page.keyboard.press("Escape")
    expect(page.locator("#list-pane")).to_be_visible()
    context.close()


def test_the_export_writes_what_training_reads_and_rasa_validates_it(servers, replayed, tmp_path):
    def rate(**body) -> None:
        answer = requests.post(url(servers, "api/ratings"), json=body, headers=SCRIPT, timeout=30)
        assert answer.status_code == 200, answer.text

    greeting = f"{replayed}-1"
    rate(conversation_id=greeting, turn=1, target="reply", rating="good")
    rate(conversation_id=greeting, turn=2, target="reply", rating="good")
    rate(conversation_id=f"{replayed}-2", turn=1, target="reply", rating="wrong",
         corrected="The Moon is Earth's only natural satellite.")
    rate(conversation_id=f"{replayed}-2", turn=2, target="intent", rating="bot_challenge")
    rate(conversation_id=f"{replayed}-3", turn=1, target="rail", rating="false_alarm", rail="emergency_classifier")

    project = tmp_path / "project"
    project.mkdir()
    for name in ("domain.yml", "config.yml"):
        shutil.copy(ROOT / name, project / name)
    shutil.copytree(ROOT / "data", project / "data")
    endpoints = servers.tracker_db.parent / "endpoints.yml"
    done = subprocess.run([sys.executable, "-m", "rasa_safe_hybrid.review", "export", "--project", str(project),
                           "--db", f"sqlite:///{servers.tracker_db.parent / 'review.db'}",
                           "--endpoints", str(endpoints), "--domain", str(project / "domain.yml")],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    printed = done.stdout
    assert "wrote data/nlu/reviewed.yml" in printed and "skipped" in printed

    nlu = yaml.safe_load((project / "data" / "nlu" / "reviewed.yml").read_text())
    examples = {b["intent"]: b["examples"] for b in nlu["nlu"]}
    assert "what's your favourite colour?" in examples["bot_challenge"]
    stories = yaml.safe_load((project / "tests" / "reviewed_stories.yml").read_text())["stories"]
    assert f"reviewed {greeting}" in [s["story"] for s in stories]
    assert f"reviewed {replayed}-2" not in [s["story"] for s in stories]  # its intent was wrong
    tuning = (project / "finetune" / "data" / "reviewed.jsonl").read_text()
    assert "The Moon is Earth's only natural satellite." in tuning and "moon" in tuning
    guards = (project / "finetune" / "data" / "guards" / "reviewed.tsv").read_text()
    assert re.search(r"^emergency\t0\t(Ana|script)\tI just got back from a long walk with my dog$", guards, re.M)

    validated = subprocess.run([str(BIN / "rasa"), "data", "validate", "--domain", "domain.yml", "--data", "data",
                                "--config", "config.yml"], cwd=project, capture_output=True, text=True, timeout=900)
    assert validated.returncode == 0, (validated.stdout + validated.stderr)[-3000:]
