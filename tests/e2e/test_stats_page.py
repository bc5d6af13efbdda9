"""The Pôles' figures page (`GET /stats`) in a headless Chromium: an operator signs in, reads the tables with the
small counts withheld and the legend saying why, in French then Dutch, and downloads the CSV."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from playwright.async_api import expect
from sqlmodel import func, select

from maillage.core.clock import ManualClock
from maillage.domain.statistics import quarter_bounds, quarter_of
from maillage.monitor.models import Decision
from tests.browser import assert_strict_csp, chromium_page, watch_for_problems
from tests.integration.test_stats import Flow, publish
from tests.monitor import monitor, operator_token
from tests.support import Pole, eventually

pytestmark = pytest.mark.e2e


async def test_an_operator_reads_the_poles_figures_with_small_counts_withheld_and_downloads_them(pole: Pole) -> None:
    flow = Flow(datetime.now(UTC))
    flow.add(12, "referral.created", "refuge-liege", "cpas-seraing")
    flow.add(3, "referral.created", "refuge-liege", "zp-meuse")
    flow.add(8, "referral.created", "zp-meuse", "cpas-seraing")
    flow.add(9, "referral.created", "zp-meuse", "zp-meuse")
    await publish(pole, pole.topics.audit, (orjson.dumps(r) for r in flow.records))
    async with monitor(pole) as running:

        async def all_read() -> bool:
            async with running.monitor.sessions() as session:
                return (await session.exec(select(func.count()).select_from(Decision))).one() == len(flow.records)

        await eventually(all_read, what="the records at the monitor")
        # The page shows the last closed quarter: this one, once it has ended.
        running.monitor.clock = ManualClock(quarter_bounds(quarter_of(datetime.now(UTC)))[1] + timedelta(hours=1))
        problems: list[str] = []
        async with chromium_page((1280, 900), locale="fr-BE") as page:
            watch_for_problems(page, problems)
            await assert_strict_csp(page, await page.goto(running.url + "/stats"))
            await page.get_by_test_id("token-input").fill(operator_token(pole))
            await page.get_by_test_id("sign-in-button").click()
            await expect(page.get_by_test_id("stats-title")).to_have_text("Chiffres pour les politiques publiques")
            referrals = page.get_by_test_id("figure-referrals")
            await expect(referrals).to_contain_text("Aide aux victimes")
            await expect(referrals).to_contain_text("12")
            await expect(referrals).to_contain_text("—")  # three to the police: withheld, with its complement
            await expect(page.get_by_test_id("stats-legend")).to_contain_text("inférieurs à 5")

            await page.get_by_test_id("lang-select").select_option("nl")
            await expect(page.get_by_test_id("stats-title")).to_have_text("Cijfers voor het overheidsbeleid")
            await expect(referrals).to_contain_text("Slachtofferhulp")

            async with page.expect_download() as downloading:
                await page.get_by_test_id("stats-download").click()
            download = await downloading.value
            assert download.suggested_filename.startswith("maillage-stats-")
            exported = Path(await download.path()).read_text(encoding="utf-8")
            assert exported.splitlines()[0] == "Pôle,Kwartaal,Tabel,Rij,Kolom,Waarde,Verborgen"
            assert not any(secret in exported for secret in flow.secrets)
        assert problems == []
