"""The on-call worker's page (`GET /oncall`) in a phone-sized headless Chromium.

A real broker, gateway, sending agency and dispatcher: the worker signs in with their token, an alert
appears live, the labels follow the chosen language, one tap acknowledges it and the sender sees it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from maillage.core.clock import ManualClock
from maillage.core.messaging.envelope import new_subject_ref
from tests.browser import (
    assert_inline_code_refused,
    assert_strict_csp,
    chromium_page,
    screenshot_path,
    watch_for_csp_violations,
    watch_for_problems,
)
from tests.oncall import (
    LEVEL_1,
    POLICE,
    WEDNESDAY_10H,
    alert_progress,
    dispatcher,
    raise_alert,
    start_pole,
    worker_token,
)
from tests.support import Pole

pytestmark = pytest.mark.e2e

PHONE = (390, 844)
DELIVERED_MS = 30_000  # an alert crosses the sender, the gateway and the broker before the dispatcher pages it
HOSTILE_NAME = '<img src=x onerror="alert(1)">'


async def raise_hostile_alert(pole: Pole) -> str:
    """An alert whose personal data is markup: the page must show it as text."""
    response = await pole["refuge-liege"].post(
        "/v1/alerts",
        json={
            "subject_ref": new_subject_ref(),
            "subject_role": "victim",
            "severity": "high",
            "kind": "weapon",
            "recipients": [POLICE],
            "legal_basis": "danger",
            "justification": "A gun was seen in his car.",
            "data": {
                "identity": {"given_name": HOSTILE_NAME, "family_name": "<b>Doe</b>"},
                "location": {"municipality": "<script>alert(2)</script>"},
            },
        },
    )
    assert response.status_code == 202, response.text
    return str(response.json()["event_id"])


async def no_horizontal_overflow(page: Page) -> None:
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE[0], f"the page scrolls sideways: {width}px wide in a {PHONE[0]}px screen"


async def test_worker_signs_in_sees_an_alert_live_and_acknowledges_it_in_one_tap(pole: Pole, tmp_path: Path) -> None:
    await start_pole(pole, tmp_path)
    problems: list[str] = []
    async with (
        dispatcher(pole, ManualClock(WEDNESDAY_10H)) as running,
        chromium_page(PHONE, locale="fr-BE", timezone_id="Europe/Brussels") as page,
    ):
        watch_for_problems(page, problems)
        await watch_for_csp_violations(page, problems)

        # Signing in: French from the browser's language, the token pasted, the worker greeted.
        await assert_strict_csp(page, await page.goto(running.url + "/oncall"))
        await expect(page.locator("html")).to_have_attribute("lang", "fr")
        await expect(page.get_by_test_id("lang-select")).to_have_value("fr")
        await page.get_by_test_id("token-input").fill(worker_token(pole, LEVEL_1[0]))
        await page.get_by_test_id("sign-in-button").click()
        hello = page.get_by_test_id("hello")
        await expect(hello).to_contain_text(LEVEL_1[0])
        await expect(hello).to_contain_text("Zone de police Meuse-Ourthe")
        await expect(hello).to_contain_text("De garde : niveau 1")
        await expect(page.get_by_test_id("status")).to_contain_text("En direct")
        await expect(page.get_by_test_id("empty")).to_contain_text("Aucune alerte ouverte")
        await expect(page.get_by_test_id("sign-in")).to_be_hidden()

        # An imminent danger is paged: its card appears live, with what the worker needs to act.
        subject = new_subject_ref()
        alert_id = await raise_alert(pole, subject)
        card = page.locator(f'[data-testid="alert-card"][data-alert-id="{alert_id}"]')
        await expect(card).to_be_visible(timeout=DELIVERED_MS)
        # A second alert about the same person joins the card, shown with it, not as another page.
        second_id = await raise_alert(pole, subject, severity="high")
        await expect(card.locator(f'[data-testid="group-member"][data-alert-id="{second_id}"]')).to_contain_text(
            "Menaces", timeout=DELIVERED_MS
        )
        await expect(card.get_by_test_id("grouped")).to_contain_text("2")
        await expect(card.get_by_test_id("severity")).to_have_text("Danger imminent")
        await expect(card.get_by_test_id("kind")).to_have_text("Menaces")
        await expect(card.get_by_test_id("level")).to_contain_text("Niveau 1 sur 3")
        await expect(card.get_by_test_id("level")).to_contain_text("Équipe d'intervention de garde")
        await expect(card.get_by_test_id("person")).to_have_text("Amina Testperson")
        await expect(card.get_by_test_id("municipality")).to_have_text("Liège")
        await expect(card.get_by_test_id("source")).to_contain_text("Refuge Rosa — Liège")
        await expect(card.get_by_test_id("age")).not_to_be_empty()
        await expect(page.get_by_test_id("empty")).to_be_hidden()
        await expect(page).to_have_title(re.compile(r"^\(1\) "))
        await no_horizontal_overflow(page)

        # Every label follows the language chosen; the choice and the sign-in survive a reload.
        language = page.get_by_test_id("lang-select")
        for lang, severity, ack in (
            ("nl", "Dreigend gevaar", "In behandeling nemen"),
            ("de", "Unmittelbare Gefahr", "Übernehmen"),
        ):
            await language.select_option(lang)
            await expect(page.locator("html")).to_have_attribute("lang", lang)
            await expect(card.get_by_test_id("severity")).to_have_text(severity)
            await expect(card.get_by_test_id("ack-button")).to_have_text(ack)
            await no_horizontal_overflow(page)
        await expect(hello).to_contain_text("Bereitschaft: Stufe 1")
        await page.reload()
        await expect(page.locator("html")).to_have_attribute("lang", "de")
        await expect(card.get_by_test_id("severity")).to_have_text("Unmittelbare Gefahr")  # from the snapshot
        await expect(page.get_by_test_id("sign-in")).to_be_hidden()
        await language.select_option("fr")
        await expect(card.get_by_test_id("ack-button")).to_have_text("Prendre en charge")
        await expect(page.get_by_test_id("status")).to_contain_text("En direct")
        await page.screenshot(path=screenshot_path("oncall-page"), full_page=True, animations="disabled")

        # One tap acknowledges it: the card says so, then goes; the sender sees it taken in hand.
        ack = card.get_by_test_id("ack-button")
        box = await ack.bounding_box()
        assert box is not None and box["height"] >= 48 and box["width"] >= PHONE[0] / 2, box
        await ack.click()
        await expect(card.get_by_test_id("ack-done")).to_have_text("Alerte prise en charge")
        await expect(card).to_have_count(0)
        await expect(page.get_by_test_id("empty")).to_be_visible()
        progress = await alert_progress(pole, "refuge-liege", alert_id, state="acknowledged")
        assert progress["level"] == 1

        # Personal data is shown as text, never run as markup; the most severe alert comes first.
        hostile_id = await raise_hostile_alert(pole)
        hostile = page.locator(f'[data-testid="alert-card"][data-alert-id="{hostile_id}"]')
        await expect(hostile).to_be_visible(timeout=DELIVERED_MS)
        await expect(hostile.get_by_test_id("person")).to_have_text(f"{HOSTILE_NAME} <b>Doe</b>")
        await expect(hostile.get_by_test_id("municipality")).to_have_text("<script>alert(2)</script>")
        await expect(hostile.locator("img, b, script")).to_have_count(0)
        await expect(hostile.get_by_test_id("severity")).to_have_text("Danger élevé")
        imminent_id = await raise_alert(pole, new_subject_ref())
        cards = page.get_by_test_id("alert-card")
        await expect(cards).to_have_count(2, timeout=DELIVERED_MS)
        await expect(cards.first).to_have_attribute("data-alert-id", imminent_id)
        await no_horizontal_overflow(page)

        # No script error, dialog or CSP refusal all along; and the browser would have reported one.
        assert problems == []
        await assert_inline_code_refused(page, problems)
