"""The operators' dashboard (`GET /dashboard`) in a headless Chromium, on the demo network.

A real broker, gateway and three agencies: referrals delivered, filtered and denied, a danger alert
awaiting its review at the agency that raised it (counted here, never approved here), and one malformed
record dead-lettered by the gateway. The operator signs in with a token, sees the flow per sector as charts
with real data, replays the dead letter, reads the page in three languages, and never sees a single personal
value.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from playwright.async_api import Page, expect

from maillage.core.messaging.envelope import new_subject_ref
from tests.browser import (
    assert_inline_code_refused,
    assert_strict_csp,
    chromium_page,
    screenshot_path,
    watch_for_csp_violations,
    watch_for_problems,
)
from tests.monitor import agency_minted_operator_token, as_operator, monitor, operator_token
from tests.support import ALL_EIGHT, Pole, consent, decided, eventually, refer

pytestmark = pytest.mark.e2e

DESKTOP = (1280, 900)
PHONE = (390, 844)
SENDER = "refuge-liege"
# The partner system that raises refuge-liege's alerts: as an operator, the same person (four-eyes rule).
RAISER = f"{SENDER}-case-system"
EXPECTED = {"delivered": 1, "filtered": 3, "denied": 1}


def personal_values(value: Any) -> Iterator[str]:
    """Every personal value of a record, as text: none may ever reach the operators' page."""
    if isinstance(value, dict):
        for inner in value.values():
            yield from personal_values(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from personal_values(inner)
    elif isinstance(value, str):
        yield value


async def send_the_day(pole: Pole) -> None:
    """Referrals from refuge-liege: one delivered whole, three filtered (one a danger alert), one denied."""
    consented, to_praxis = new_subject_ref(), new_subject_ref()
    await consent(pole, SENDER, consented, to=["cpas-seraing"], categories=["identity", "narrative"])
    await consent(pole, SENDER, to_praxis, to=["praxis-meuse"], categories=["risk"])
    events = [
        await refer(
            pole,
            SENDER,
            consented,
            to="cpas-seraing",
            data={"identity": ALL_EIGHT["identity"], "narrative": ALL_EIGHT["narrative"]},
        ),
        await refer(pole, SENDER, consented, to="cpas-seraing"),  # all eight: only two consented
        await refer(pole, SENDER, to_praxis, to="praxis-meuse"),  # all eight: risk only
        await refer(pole, SENDER, new_subject_ref(), to="cpas-seraing"),  # no consent at all
    ]
    response = await pole[SENDER].post(
        "/v1/alerts",
        json={
            "subject_ref": new_subject_ref(),
            "subject_role": "victim",
            "severity": "imminent",
            "kind": "custody_release",
            "recipients": ["police"],
            "legal_basis": "danger",
            "justification": "He was released this morning and is on his way.",
            "data": ALL_EIGHT,
        },
    )
    assert response.status_code == 202, response.text
    events.append(response.json()["event_id"])
    outcomes = [
        line["outcome"] for event_id in events for line in (await decided(pole, SENDER, event_id))["recipients"]
    ]
    assert outcomes == ["delivered", "filtered", "filtered", "denied", "filtered"]


async def produce_malformed_record(pole: Pole) -> None:
    """A record without any ce_* header on maillage.submitted: the gateway dead-letters it (`envelope`)."""
    producer = AIOKafkaProducer(bootstrap_servers=pole.bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        await producer.send_and_wait(pole.topics.submitted, b"\x00 not an event", key=b"stray", headers=[])
    finally:
        await producer.stop()


async def everything_visible(api: httpx.AsyncClient) -> dict[str, Any]:
    """The monitor's API, once it has read every decision, the review, the dead letter and measured lag."""

    async def probe() -> dict[str, Any] | None:
        overview = (await api.get("/v1/overview")).json()
        dead = (await api.get("/v1/dead-letters")).json()["items"]
        lag = (await api.get("/v1/lag")).json()
        seen = overview["decisions"] == EXPECTED and overview["reviews_pending"] == 1 and len(dead) == 1
        return {"overview": overview, "dead": dead[0]} if seen and lag["measured_at"] else None

    return await eventually(probe, timeout=30, what="decisions, the review and the dead letter in the monitor")


async def sign_in(page: Page, token: str) -> None:
    await expect(page.get_by_test_id("sign-in")).to_be_visible()
    await page.get_by_test_id("token-input").fill(token)
    await page.get_by_test_id("sign-in-button").click()
    await expect(page.get_by_test_id("status")).to_have_attribute("data-state", "live")


async def sign_out(page: Page) -> None:
    await page.get_by_test_id("sign-out").click()
    await expect(page.get_by_test_id("sign-in")).to_be_visible()


async def no_horizontal_overflow(page: Page, width: int) -> None:
    scroll = await page.evaluate("document.documentElement.scrollWidth")
    assert scroll <= width, f"the page scrolls sideways: {scroll}px wide in a {width}px window"


async def screenshot(page: Page, name: str) -> None:
    """The whole page from its top (the bar is sticky), once the last action's notice has gone."""
    await expect(page.get_by_test_id("notice")).to_be_hidden(timeout=10_000)
    await page.evaluate("window.scrollTo(0, 0)")
    await page.screenshot(path=screenshot_path(name), full_page=True, animations="disabled")


async def no_personal_data(page: Page) -> None:
    html = await page.content()
    leaked = [value for value in personal_values(ALL_EIGHT) if value in html]
    assert leaked == [], f"personal data on the operators' page: {leaked}"


async def test_operator_watches_the_flow_replays_a_dead_letter_and_never_sees_personal_data(pole: Pole) -> None:
    await pole.start_gateway()
    for agency in (SENDER, "cpas-seraing", "praxis-meuse"):
        await pole.start_agency(agency)
    await send_the_day(pole)
    await produce_malformed_record(pole)

    problems: list[str] = []
    async with (
        monitor(pole) as running,
        as_operator(running, operator_token(pole, act=True)) as api,
        chromium_page(DESKTOP, locale="fr-BE", timezone_id="Europe/Brussels") as page,
    ):
        seen = await everything_visible(api)
        dead_id = seen["dead"]["id"]
        assert (seen["dead"]["reason"], seen["dead"]["replayable"]) == ("envelope", True)

        watch_for_problems(page, problems)
        await watch_for_csp_violations(page, problems)

        # French from the browser's language; a token the monitor refuses (401) leads back to the sign-in.
        await assert_strict_csp(page, await page.goto(running.url + "/dashboard"))
        await expect(page.locator("html")).to_have_attribute("lang", "fr")
        await expect(page.get_by_test_id("lang-select")).to_have_value("fr")
        await page.get_by_test_id("token-input").fill("not-a-token")
        await page.get_by_test_id("sign-in-button").click()
        banner = page.get_by_test_id("banner")
        await expect(banner).to_be_visible()
        await expect(banner).to_have_attribute("data-status", "401")
        await expect(page.get_by_test_id("banner-title")).to_have_text("Authentification requise")
        await expect(page.get_by_test_id("sign-in")).to_be_visible()

        # A read-only token sees everything, but replaying needs monitor:act: the page says so plainly.
        await sign_in(page, operator_token(pole, "operator-bruno"))
        await expect(page.get_by_test_id("who-scope")).to_have_text("Lecture seule")
        row = page.locator(f'[data-testid="dead-letter-row"][data-id="{dead_id}"]')
        await row.get_by_test_id("replay-button").click()
        await expect(banner).to_have_attribute("data-status", "403")
        await expect(page.get_by_test_id("banner-help")).to_contain_text("portée monitor:act")
        await expect(page.get_by_test_id("banner-detail")).to_contain_text("pas la portée monitor:act")
        await expect(row).to_have_attribute("data-replayed", "false")
        await sign_out(page)

        # Whoever raised the danger alert cannot approve its disclosure, not even with a token its agency
        # minted with the operators' scopes: operators' powers come from the operators' issuer only.
        await expect(page.get_by_test_id("sign-in")).to_be_visible()
        await page.get_by_test_id("token-input").fill(agency_minted_operator_token(pole, SENDER, RAISER))
        await page.get_by_test_id("sign-in-button").click()
        await expect(banner).to_have_attribute("data-status", "403")
        await expect(page.get_by_test_id("banner-help")).to_contain_text("jeton d'opérateur")
        await expect(page.get_by_test_id("sign-in")).to_be_visible()

        # The operator with monitor:act: tiles, charts with real data, decisions, lag, the dead letter.
        await sign_in(page, operator_token(pole, act=True))
        await expect(banner).to_be_hidden()
        await expect(page.get_by_test_id("who-scope")).to_have_text("Lecture et actions")
        await expect(page.get_by_test_id("tile-decisions")).to_have_attribute("data-value", "5")
        for outcome, count in EXPECTED.items():
            await expect(page.get_by_test_id(f"tile-{outcome}")).to_have_attribute("data-value", str(count))
        await expect(page.get_by_test_id("tile-decisions").get_by_test_id("tile-value")).to_have_text("5")
        await expect(page.get_by_test_id("tile-dead-letters")).to_have_attribute("data-value", "1")
        await expect(page.get_by_test_id("tile-reviews")).to_have_attribute("data-value", "1")

        charts = page.get_by_test_id("flow-chart")
        await expect(charts).to_have_count(3)
        plotted = await charts.evaluate_all("svgs => svgs.map(svg => [svg.dataset.sector, Number(svg.dataset.total)])")
        assert dict(plotted) == {"perpetrator_support": 1, "police": 1, "social": 3}
        assert sum(total for _, total in plotted) > 0
        assert await page.locator('[data-testid="flow-chart"] rect.seg').count() >= 3  # bars drawn
        await expect(page.get_by_test_id("flow-legend")).to_contain_text("Délivrées")
        await expect(page.get_by_test_id("decision-row")).to_have_count(5)
        await expect(page.get_by_test_id("lag-row").first).to_be_visible()

        await expect(row).to_contain_text("envelope")
        await expect(row.get_by_test_id("reason")).to_contain_text("Enveloppe invalide")
        await expect(row).to_contain_text("Passerelle")
        await expect(row).to_have_attribute("data-replayed", "false")
        await no_personal_data(page)

        # Replay: the row is marked replayed, the API agrees, and the gateway refuses the record again.
        await row.get_by_test_id("replay-button").click()
        await expect(row).to_have_attribute("data-replayed", "true")
        await expect(row.get_by_test_id("replayed")).to_contain_text("Oui")
        await expect(row.get_by_test_id("replay-button")).to_have_count(0)
        await expect(page.get_by_test_id("notice")).to_contain_text("relancée")
        [item] = [d for d in (await api.get("/v1/dead-letters")).json()["items"] if d["id"] == dead_id]
        assert item["replays"] == 1 and item["replayed_at"] is not None
        await expect(page.get_by_test_id("dead-letter-row")).to_have_count(2, timeout=20_000)
        await expect(banner).to_be_hidden()

        # Every label follows the language chosen.
        language = page.get_by_test_id("lang-select")
        for lang, title, flow, reason in (
            ("nl", "Netwerkmonitoring", "Stroom per sector", "Ongeldige envelop"),
            ("de", "Netzwerküberwachung", "Fluss pro Sektor", "Ungültiger Umschlag"),
        ):
            await language.select_option(lang)
            await expect(page.locator("html")).to_have_attribute("lang", lang)
            await expect(page.get_by_test_id("page-title")).to_have_text(title)
            await expect(page.get_by_test_id("flow-title")).to_have_text(flow)
            await expect(row.get_by_test_id("reason")).to_contain_text(reason)
        await language.select_option("fr")
        await expect(page.get_by_test_id("page-title")).to_have_text("Supervision du réseau")
        await expect(page.get_by_test_id("status")).to_have_attribute("data-state", "live")
        await no_horizontal_overflow(page, DESKTOP[0])
        await screenshot(page, "dashboard")

        # The danger disclosure is counted, pending its review at the raising agency: nothing to approve here.
        review = page.get_by_test_id("review-counts")
        await expect(review).to_have_attribute("data-pending", "1")
        await expect(review).to_have_attribute("data-approved", "0")
        await expect(page.get_by_test_id("approve-button")).to_have_count(0)
        assert (await api.get("/v1/reviews")).json()["pending"] == 1

        # Usable on a phone: nothing scrolls sideways, every table reads as cards.
        await page.set_viewport_size({"width": PHONE[0], "height": PHONE[1]})
        await expect(charts.first).to_be_visible()
        await no_horizontal_overflow(page, PHONE[0])
        await screenshot(page, "dashboard-phone")
        await no_personal_data(page)

        # No script error, dialog or CSP refusal all along; and the browser would have reported one.
        assert problems == []
        await assert_inline_code_refused(page, problems)
