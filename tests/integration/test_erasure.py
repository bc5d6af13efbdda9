"""A person's erasure reaches every copy: asked at one agency, it goes to every agency that sent or received
anything about the person and to the dispatcher answering for their on-call; each deletes and confirms, the
gateway forgets the person's consents and routes, and the audit chain records the erasure. Then no byte of
any database file of any service (write-ahead logs included, after a checkpoint) holds what was said about the
person. And a role recorded wrongly is corrected everywhere it went, with the deliveries the right role would
not have allowed flagged per recipient, and erased by one call."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from maillage.core.audit import repository as audit_repository
from maillage.core.clock import ManualClock
from maillage.core.crypto.tokens import Scope
from maillage.core.messaging.envelope import new_subject_ref
from maillage.core.polling import eventually
from maillage.core.storage.db import make_engine, session_factory
from tests.monitor import as_operator, monitor, operator_token
from tests.oncall import WEDNESDAY_10H, dispatcher, start_pole
from tests.support import Pole, assert_problem, consent, decided, inbox_of, received, refer

pytestmark = pytest.mark.integration

REFUGE, CPAS, POLICE, CHR = "refuge-liege", "cpas-seraing", "zp-meuse", "chr-citadelle"
MARKER = "Qx7Marker"
NATIONAL_NUMBER = "98123145677"  # digits only by schema: looked for as such


def marked(tag: str) -> dict[str, Any]:
    """Every free-text field of the eight categorised parts carries the marker (the others are closed values)."""
    m = f"{MARKER}-{tag}"
    return {
        "identity": {"given_name": f"{m}-given", "family_name": f"{m}-family", "national_number": NATIONAL_NUMBER},
        "contact": {"phone": f"{m}-phone", "email": f"{m}@example.org", "safe_contact_times": f"{m}-times"},
        "location": {"address": f"{m}-address", "municipality": f"{m}-town", "in_shelter": True},
        "children": [{"given_name": f"{m}-child", "birth_year": 2019, "lives_with_subject": True}],
        "risk": {"level": "severe", "factors": [f"{m}-factor"]},
        "judicial": {"protection_order": True, "case_reference": f"{m}-case"},
        "health": {"notes": f"{m}-health"},
        "narrative": f"{m}-narrative",
    }


def database_files(data_dir: Path) -> list[Path]:
    """Every SQLite database of every service, checkpointed (the write-ahead log folded in and truncated), with
    its -wal and -shm files."""
    databases = sorted(data_dir.rglob("*.db"))
    for path in databases:
        with sqlite3.connect(path) as db:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return [p for db in databases for p in (db, Path(f"{db}-wal"), Path(f"{db}-shm")) if p.exists()]


def holding(files: list[Path], *needles: str) -> dict[str, list[str]]:
    """Which files hold which needles, read byte by byte (UTF-8, and JSON's escaped form of the same)."""
    found: dict[str, list[str]] = {}
    for path in files:
        content = path.read_bytes()
        hits = [n for n in needles if n.encode() in content]
        if hits:
            found[path.name] = hits
    return found


def eraser(pole: Pole, agency: str) -> dict[str, str]:
    """A data-protection officer's token: erasure is a scope of its own, not a partner system's."""
    return {"Authorization": f"Bearer {pole.token(agency, (Scope.SUBJECT_ERASE,))}"}


async def erasure_state(pole: Pole, agency: str, erasure_id: str, *, until: str) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        body: dict[str, Any] = (
            await pole[agency].get(f"/v1/erasures/{erasure_id}", headers=eraser(pole, agency))
        ).json()
        return body if body["state"] == until else None

    return await eventually(probe, timeout=60, what=f"erasure {erasure_id} {until}")


async def alert_at_dispatcher(path: Path, alert_id: str) -> None:
    def stored() -> bool:
        with sqlite3.connect(path) as db:
            return bool(db.execute("SELECT count(*) FROM oncall_alert WHERE alert_id = ?", (alert_id,)).fetchone()[0])

    async def probe() -> bool | None:
        return stored() or None

    await eventually(probe, timeout=30, what="the alert at the dispatcher")


async def test_an_erasure_reaches_every_copy_and_leaves_no_byte_of_the_person(pole: Pole, tmp_path: Path) -> None:
    await start_pole(pole, tmp_path)  # the on-call network: gateway, refuge-liege
    for agency in (CPAS, POLICE):
        await pole.start_agency(agency)
    async with dispatcher(pole, ManualClock(WEDNESDAY_10H)):
        subject = new_subject_ref()
        await consent(pole, REFUGE, subject, to=[CPAS], categories=["identity", "contact", "location", "narrative"])
        referral = await refer(pole, REFUGE, subject, to=CPAS, data=marked("referral"))
        alert = await pole[REFUGE].post(
            "/v1/alerts",
            json={
                "subject_ref": subject,
                "subject_role": "victim",
                "severity": "imminent",
                "kind": "threat",
                "recipients": [POLICE],
                "legal_basis": "danger",
                "justification": f"{MARKER}-justification",
                "data": marked("alert"),
            },
        )
        assert alert.status_code == 202, alert.text
        alert_id = alert.json()["event_id"]
        await received(pole, CPAS, referral)
        await received(pole, POLICE, alert_id)
        await alert_at_dispatcher(pole.data_dir / "dispatcher.db", alert_id)
        # The scan sees what is there: before the erasure, every service that holds the person shows the marker.
        before = holding(database_files(pole.data_dir), MARKER)
        assert {"agency-refuge-liege.db", "agency-cpas-seraing.db", "agency-zp-meuse.db", "dispatcher.db"} <= set(
            before
        ), before

        asked = await pole[CPAS].post(
            f"/v1/subjects/{subject}/erasure", json={"ground": "objection"}, headers=eraser(pole, CPAS)
        )
        assert asked.status_code == 202, asked.text
        erasure_id = asked.json()["event_id"]
        done = await erasure_state(pole, CPAS, erasure_id, until="confirmed")

        holders = {(h["agency"], h["holder"]): h for h in done["holders"]}
        # The requester too: its own service erases again what reached it after it asked.
        assert set(holders) == {(CPAS, "agency"), (REFUGE, "agency"), (POLICE, "agency"), (POLICE, "dispatcher")}
        assert all(h["state"] == "confirmed" and h["confirmed_at"] for h in holders.values())
        assert holders[POLICE, "dispatcher"]["erased"] == 1  # the alert, its pages and calls
        assert holders[POLICE, "agency"]["erased"] >= 1
        kept = {i["type"] for i in await inbox_of(pole[CPAS])}
        assert kept == {"maillage.notice.issued.v1"}, "the requester's own copy went: only the notice is left"

        # The gateway forgot the person's consents and routes: an answer to the erased referral has no way back.
        engine = make_engine(pole.database_url("gateway"))
        try:
            async with session_factory(engine)() as session:
                records = await audit_repository.recorded_about(session, subject)
        finally:
            await engine.dispose()
        erasure_records = [r for r in records if r["event_id"] == erasure_id]
        assert [r["action"]["erasure"] for r in erasure_records] == ["objection"]
        assert sorted(erasure_records[0]["action"]["told"]) == sorted(f"{a}:{h}" for a, h in holders)
        assert any(r["event_id"] == referral for r in records), "the audit keeps the trace of the disclosures"

        files = database_files(pole.data_dir)
        assert holding(files, MARKER, NATIONAL_NUMBER) == {}


async def test_a_wrong_role_is_corrected_everywhere_and_what_it_let_through_is_erased_by_one_call(
    pole: Pole, tmp_path: Path
) -> None:
    await pole.start_gateway()
    for agency in (REFUGE, CPAS, CHR):
        await pole.start_agency(agency)
    subject = new_subject_ref()
    # Recorded as the perpetrator: the hospital (health) may receive identity, health and risk about one.
    await consent(pole, REFUGE, subject, to=[CPAS, CHR], categories=["identity", "contact", "health", "risk"])
    to_chr = await refer(pole, REFUGE, subject, to=CHR, role="perpetrator", data=marked("chr"))
    to_cpas = await refer(pole, REFUGE, subject, to=CPAS, role="perpetrator", data=marked("cpas"))
    await received(pole, CHR, to_chr)
    await received(pole, CPAS, to_cpas)

    # The person is a child. Under "perpetrator" the hospital received identity, health and risk, the CPAS
    # identity and contact: both are told, and each flagged for what a child's ceiling would not allow it.
    corrected = await pole[REFUGE].post(
        f"/v1/subjects/{subject}/role-corrections",
        json={"role": "child", "previous": "perpetrator", "reason": "recording_error"},
    )
    assert corrected.status_code == 202, corrected.text
    correction = corrected.json()["event_id"]

    async def told() -> dict[str, Any] | None:
        fate: dict[str, Any] = (await pole[REFUGE].get(f"/v1/events/{correction}")).json()
        acknowledged = [n for n in fate.get("notices", []) if n["acknowledged_at"]]
        return fate if len(acknowledged) == 2 else None

    fate = await eventually(told, timeout=30, what="the correction acknowledged by both recipients")
    by_recipient = {n["recipient"]: n for n in fate["notices"]}
    # As a child, the hospital may receive identity, children, health — not risk; the CPAS identity, children —
    # not contact. Each is flagged with exactly the event and the categories the right role would not allow.
    assert by_recipient[CHR]["misrouted"] == [to_chr]
    assert by_recipient[CHR]["disallowed"] == ["risk"]
    assert by_recipient[CPAS]["misrouted"] == [to_cpas]
    assert by_recipient[CPAS]["disallowed"] == ["contact"]
    for agency in (CHR, CPAS):
        [notice] = [i for i in await inbox_of(pole[agency]) if i["type"] == "maillage.notice.issued.v1"]
        assert notice["data"]["kind"] == "role_corrected" and notice["data"]["role"] == "child"

    # From now on the corrected role wins over what a later event states.
    later = await refer(pole, REFUGE, subject, to=CHR, role="perpetrator", data=marked("later"))
    item = await received(pole, CHR, later)
    assert item["subject_role"] == "child"
    assert "risk" not in item["data"], "the child's ceiling at a hospital, not the perpetrator's"

    erase = await pole[REFUGE].post(
        f"/v1/subjects/{subject}/role-corrections/{correction}/erasure", headers=eraser(pole, REFUGE)
    )
    assert erase.status_code == 202, erase.text
    done = await erasure_state(pole, REFUGE, erase.json()["event_id"], until="confirmed")
    assert {(h["agency"], h["erased"]) for h in done["holders"]} == {(CHR, 1), (CPAS, 1)}
    chr_events = {i["event_id"] for i in await inbox_of(pole[CHR])}
    assert to_chr not in chr_events and later in chr_events, "exactly the flagged event went"
    assert to_cpas not in {i["event_id"] for i in await inbox_of(pole[CPAS])}

    # Nobody else's: an agency that did not correct cannot ask for the correction's erasure.
    path = f"/v1/subjects/{subject}/role-corrections/{correction}/erasure"
    assert_problem(await pole[CPAS].post(path, headers=eraser(pole, CPAS)), 404)
    assert_problem(await pole[REFUGE].post(path), 403)  # a partner system's token cannot erase


async def test_operators_see_which_holders_have_not_confirmed_an_erasure_in_time(pole: Pole) -> None:
    await pole.start_gateway()
    await pole.start_agency(REFUGE)  # the hospital's service is down: it cannot confirm
    async with monitor(pole) as running, as_operator(running, operator_token(pole)) as operator:
        subject = new_subject_ref()
        await consent(pole, REFUGE, subject, to=[CHR], categories=["identity", "health"])
        await decided(pole, REFUGE, await refer(pole, REFUGE, subject, to=CHR, data=marked("chr")))
        asked = await pole[REFUGE].post(
            f"/v1/subjects/{subject}/erasure", json={"ground": "no_longer_necessary"}, headers=eraser(pole, REFUGE)
        )
        pending = await erasure_state(pole, REFUGE, asked.json()["event_id"], until="pending")
        states = {h["agency"]: h["state"] for h in pending["holders"]}
        assert states[CHR] == "pending" and set(states) == {CHR, REFUGE}

        async def listed(after: timedelta) -> dict[str, Any] | None:
            running.monitor.clock = ManualClock(datetime.now(UTC) + after)
            body: dict[str, Any] = (await operator.get("/v1/erasures/unconfirmed")).json()
            return body if body["items"] else None

        assert await listed(timedelta(hours=1)) is None, "within the network's time: nobody chased yet"
        overdue = await eventually(lambda: listed(timedelta(hours=73)), timeout=30, what="the overdue holder")
        assert overdue["older_than_hours"] == 72
        [item] = [i for i in overdue["items"] if i["agency"] == CHR]
        assert (item["agency"], item["holder"]) == (CHR, "agency") and item["age_seconds"] > 72 * 3600
        assert subject not in str(overdue), "operators never see whom it is about"


async def test_an_agency_that_only_obtained_a_consent_erases_it_at_the_gateway_too(pole: Pole) -> None:
    await pole.start_gateway()
    for agency in (REFUGE, CPAS):
        await pole.start_agency(agency)
    subject = new_subject_ref()
    await consent(pole, REFUGE, subject, to=[CPAS], categories=["identity"])  # nothing sent yet

    asked = await pole[REFUGE].post(
        f"/v1/subjects/{subject}/erasure", json={"ground": "consent_withdrawn"}, headers=eraser(pole, REFUGE)
    )
    done = await erasure_state(pole, REFUGE, asked.json()["event_id"], until="confirmed")

    assert [(h["agency"], h["holder"]) for h in done["holders"]] == [(REFUGE, "agency")]
    # The consent went with the person: a referral under it finds none at the gateway.
    after = await refer(pole, REFUGE, subject, to=CPAS, data=marked("after"))
    [line] = (await decided(pole, REFUGE, after))["recipients"]
    assert line["outcome"] == "denied", line
    # And a correction that changes nothing is refused at once.
    same = {"role": "victim", "previous": "victim", "reason": "recording_error"}
    assert_problem(await pole[REFUGE].post(f"/v1/subjects/{subject}/role-corrections", json=same), 422)


async def test_the_dispatcher_shows_the_corrected_role_on_the_alerts_it_pages(pole: Pole, tmp_path: Path) -> None:
    await start_pole(pole, tmp_path)  # the on-call network: gateway, refuge-liege
    await pole.start_agency(POLICE)
    async with dispatcher(pole, ManualClock(WEDNESDAY_10H)):
        subject = new_subject_ref()
        alert = await pole[REFUGE].post(
            "/v1/alerts",
            json={
                "subject_ref": subject,
                "subject_role": "perpetrator",
                "severity": "high",
                "kind": "threat",
                "recipients": [POLICE],
                "legal_basis": "danger",
                "justification": "Threatened to come with a knife.",
                "data": {"risk": {"level": "high"}},
            },
        )
        alert_id = alert.json()["event_id"]
        path = pole.data_dir / "dispatcher.db"
        await alert_at_dispatcher(path, alert_id)

        corrected = await pole[REFUGE].post(
            f"/v1/subjects/{subject}/role-corrections",
            json={"role": "victim", "previous": "perpetrator", "reason": "assessment_revised"},
        )
        assert corrected.status_code == 202, corrected.text

        async def shown() -> str | None:
            with sqlite3.connect(path) as db:
                found = db.execute("SELECT subject_role FROM oncall_alert WHERE alert_id = ?", (alert_id,)).fetchone()
            return found[0] if found and found[0] == "victim" else None

        assert await eventually(shown, timeout=30, what="the corrected role at the dispatcher") == "victim"
