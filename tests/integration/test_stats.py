"""The Pôles' figures for public policy: small counts withheld with whatever gives them away, and nothing in the
export that names a person or an agency's own records."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from sqlmodel import col, func, select

from maillage.core.clock import ManualClock
from maillage.core.messaging.envelope import new_subject_ref
from maillage.domain.audit import audit_record, linked
from maillage.domain.disclosure import Disclosure, Outcome, Recipient
from maillage.domain.statistics import Published, quarter_bounds, quarter_of
from maillage.domain.status import OncallReport
from maillage.domain.vocabulary import Category, LegalBasis, Role, Sector
from maillage.monitor.models import Decision
from tests.monitor import as_operator, monitor, operator_token
from tests.support import Pole, assert_problem, consent, eventually, received, refer
from tests.unit.test_statistics import derivable

pytestmark = pytest.mark.integration

CHAIN = 7001  # a chain of its own, so that the gateway's real records never collide with these
SECTORS = {"refuge-liege": Sector.VICTIM_SUPPORT, "cpas-seraing": Sector.SOCIAL, "chr-citadelle": Sector.HEALTH}
SECTORS |= {"zp-meuse": Sector.POLICE}


class Flow:
    """Audit records as the gateway writes them, each about a fresh person, with every id written down."""

    def __init__(self, at: datetime) -> None:
        self.at = at
        self.records: list[dict[str, Any]] = []
        self.secrets: set[str] = set()  # every subject_ref and agency-internal id the records carry

    def add(
        self,
        n: int,
        event_type: str,
        sender: str,
        recipient: str,
        *,
        basis: LegalBasis = LegalBasis.CONSENT,
        **counted: str,
    ) -> None:
        for _ in range(n):
            event_id, subject, consent_id, staff = (
                str(uuid.uuid4()),
                new_subject_ref(),
                str(uuid.uuid4()),
                uuid.uuid4().hex[:16],
            )
            disclosure = Disclosure(
                recipient=Recipient(agency_id=recipient, sector=SECTORS[recipient]),
                basis=basis,
                outcome=Outcome.DELIVERED,
                delivered=frozenset({Category.IDENTITY}),
                consents=frozenset({consent_id}),
            )
            record = audit_record(
                disclosure,
                event_id=event_id,
                event_type=f"maillage.{event_type}.v1",
                source=sender,
                subject_role=Role.VICTIM,
                subject_ref=subject,
                policy_sha256="0" * 64,
                recorded_at=self.at.isoformat(),
                raised_by=staff,
                pole="liege",
                counted=counted,
            )
            self.records.append(linked(record, seq=len(self.records) + 1, prev_hash="0" * 64, chain=CHAIN))
            self.secrets |= {event_id, subject, consent_id, staff}


async def publish(pole: Pole, topic: str, values: Iterator[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=pole.bootstrap)
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value)
    finally:
        await producer.stop()


def as_published(table: dict[str, Any]) -> Published:
    return Published(
        name=table["name"],
        rows=tuple(table["rows"]),
        columns=tuple(table["columns"]),
        cells=tuple(tuple(row) for row in table["cells"]),
        row_totals=tuple(table["row_totals"]),
        column_totals=tuple(table["column_totals"]),
        total=table["total"],
    )


def cell(table: dict[str, Any], row: str, column: str) -> int | None:
    value: int | None = table["cells"][table["rows"].index(row)][table["columns"].index(column)]
    return value


async def test_the_poles_figures_withhold_small_counts_and_what_gives_them_away_and_name_no_one(pole: Pole) -> None:
    await pole.start_gateway()
    await pole.start_agency("refuge-liege")
    await pole.start_agency("cpas-seraing")
    # One referral through the gateway, declined: its records carry the Pôle and the reason.
    subject = new_subject_ref()
    await consent(pole, "refuge-liege", subject, to=["cpas-seraing"], categories=["identity", "contact"])
    referral = await refer(pole, "refuge-liege", subject, to="cpas-seraing")
    await received(pole, "cpas-seraing", referral)
    answer = await pole["cpas-seraing"].post(
        f"/v1/referrals/{referral}/response", json={"decision": "declined", "decline_reason": "no_capacity"}
    )
    assert answer.status_code == 200, answer.text

    now = datetime.now(UTC)
    flow = Flow(now)
    flow.add(12, "referral.created", "refuge-liege", "cpas-seraing")  # with the real one: 13
    flow.add(7, "referral.created", "refuge-liege", "chr-citadelle")
    flow.add(2, "referral.created", "refuge-liege", "zp-meuse")  # two people: withheld
    flow.add(9, "referral.created", "zp-meuse", "cpas-seraing")
    flow.add(6, "referral.created", "zp-meuse", "chr-citadelle")
    flow.add(8, "referral.created", "cpas-seraing", "zp-meuse")
    flow.add(5, "referral.created", "cpas-seraing", "chr-citadelle")
    flow.add(8, "referral.responded", "cpas-seraing", "refuge-liege", referral_decision="accepted")
    flow.add(
        2,
        "referral.responded",
        "cpas-seraing",
        "refuge-liege",
        referral_decision="declined",
        decline_reason="no_capacity",
    )
    flow.add(6, "referral.responded", "cpas-seraing", "refuge-liege", referral_decision="closed")
    flow.add(6, "alert.raised", "zp-meuse", "refuge-liege", basis=LegalBasis.DANGER, severity="imminent", kind="weapon")
    flow.add(3, "alert.raised", "zp-meuse", "refuge-liege", basis=LegalBasis.DANGER, severity="high", kind="threat")
    alerts = [r for r in flow.records if r["event_type"] == "maillage.alert.raised.v1"]
    acknowledged = [
        OncallReport(
            agency="refuge-liege",
            alert_id=r["event_id"],
            severity=r["severity"],
            state="acknowledged",
            levels_paged=1,
            received_at=now,
            at=now + timedelta(seconds=30 * (i + 1)),
        )
        for i, r in enumerate(alerts)
    ]
    await publish(pole, pole.topics.audit, (orjson.dumps(r) for r in flow.records))
    await publish(pole, pole.topics.oncall, (a.model_dump_json().encode() for a in acknowledged))

    async with monitor(pole) as running, as_operator(running, operator_token(pole)) as client:

        async def all_read() -> bool:
            async with running.monitor.sessions() as session:
                ours = (await session.exec(select(func.count()).where(col(Decision.chain) == CHAIN))).one()
                real = (await session.exec(select(Decision).where(col(Decision.decline_reason) == "no_capacity"))).all()
            return ours == len(flow.records) and any(d.chain != CHAIN for d in real)

        await eventually(all_read, what="every audit record at the monitor", timeout=30)
        quarter = quarter_of(now)
        # A quarter still running is not published (its figures would change between two readings).
        assert_problem(await client.get("/v1/stats", params={"quarter": quarter}), 422)
        running.monitor.clock = ManualClock(quarter_bounds(quarter)[1] + timedelta(hours=1))

        async def figures() -> dict[str, Any] | None:
            response = await client.get("/v1/stats", params={"quarter": quarter, "pole": "liege"})
            assert response.status_code == 200, response.text
            body: dict[str, Any] = response.json()
            return body if body["poles"] and body["poles"][0]["acknowledgement"] else None

        stats = await eventually(figures, what="the acknowledgements in the figures")
        assert stats["threshold"] == 5
        [liege] = stats["poles"]
        tables = {t["name"]: t for t in liege["tables"]}

        referrals = tables["referrals"]
        assert cell(referrals, "victim_support", "social") == 13  # the gateway's own record counted with the rest
        assert cell(referrals, "victim_support", "police") is None  # two: withheld
        # Its row and its column each hide a second figure, or their totals would give the two back: the next
        # smallest of each, then whatever those two give away in turn.
        assert cell(referrals, "victim_support", "health") is None and cell(referrals, "social", "police") is None
        assert cell(referrals, "social", "health") is None
        assert referrals["total"] == 13 + 7 + 2 + 9 + 6 + 8 + 5
        for table in liege["tables"]:
            published = as_published(table)
            assert derivable(published) == [], table["name"]
            assert all(v is None or v == 0 or v >= 5 for r in published.cells for v in r), table["name"]

        outcomes = tables["referral_outcomes"]
        assert cell(outcomes, "social", "accepted") == 8
        assert cell(outcomes, "social", "declined:no_capacity") is None  # three, the real one among them
        assert cell(outcomes, "social", "closed") is None  # or the row's total gives the three back
        # Each alert once, whoever it went to; three threats are withheld, and in so small a table, with them
        # every figure they could be worked out from.
        assert cell(tables["alerts"], "high", "threat") is None
        timing = {t["severity"]: t for t in liege["acknowledgement"]}
        assert timing["imminent"]["acknowledged"] == 6 and timing["imminent"]["median_seconds"] is not None
        assert timing["high"]["median_seconds"] is None and timing["high"]["acknowledged"] is None  # three only

        exported = await client.get(
            "/v1/stats.csv",
            params={"quarter": quarter, "pole": "liege"},
            headers={"Accept-Language": "fr-BE, nl;q=0.5"},
        )
        assert exported.status_code == 200
        assert exported.headers["content-type"].startswith("text/csv")
        assert f'filename="maillage-stats-{quarter}-liege.csv"' in exported.headers["content-disposition"]
        lines = list(csv.reader(io.StringIO(exported.text)))
        assert lines[0] == ["Pôle", "Trimestre", "Tableau", "Ligne", "Colonne", "Valeur", "Masqué"]
        withheld = {tuple(line[2:5]) for line in lines[1:] if line[6] == "1"}
        assert ("referrals", "victim_support", "police") in withheld
        assert all(line[5] == "" for line in lines[1:] if line[6] == "1")
        assert ["liege", quarter, "referrals", "victim_support", "social", "13", "0"] in lines
        # No person's reference, no agency's own id (events, consents, staff, agencies) in the export.
        everything = exported.text + (await client.get("/v1/stats")).text
        for secret in {*flow.secrets, subject, referral, *SECTORS}:
            assert secret not in everything

        # The threshold may be raised, never lowered; a quarter is a quarter.
        assert_problem(await client.get("/v1/stats", params={"threshold": 3}), 422)
        assert_problem(await client.get("/v1/stats", params={"quarter": "2026-Q5"}), 422)
        assert (await client.get("/v1/stats", params={"threshold": 10, "quarter": quarter})).json()["threshold"] == 10
        page = await client.get("/stats")
        assert page.status_code == 200 and "stats.js" in page.text
        labels = (await client.get("/v1/stats/labels", headers={"Accept-Language": "de"})).json()
        assert labels["table.referrals"].startswith("Überweisungen")
        async with as_operator(running, "not a token") as stranger:
            assert_problem(await stranger.get("/v1/stats.csv"), 401)
