"""`maillage demo`: a short scenario played against a running `maillage up`, sender and recipients side by side."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from websockets.sync.client import ClientConnection, connect

from maillage.cli.words import phrase
from maillage.core.config.network import Network
from maillage.core.crypto.keys import KeyDirs, OwnKeys, PublicKeys
from maillage.core.crypto.network_ca import client_context
from maillage.core.crypto.tokens import ALL_AGENCY_SCOPES, Scope, mint
from maillage.core.messaging.envelope import new_subject_ref
from maillage.domain.rota import Rota
from maillage.domain.vocabulary import Category

AMINA = {
    "identity": {"given_name": "Amina", "family_name": "Exemple", "birth_date": "1991-04-02"},
    "contact": {"phone": "+32 470 12 34 56", "safe_contact_times": "weekdays 10:00-12:00"},
    "location": {"address": "(shelter address)", "municipality": "Liège", "in_shelter": True},
    "children": [{"given_name": "Yanis", "birth_year": 2017, "lives_with_subject": True}],
    "risk": {"level": "high", "factors": ["threats", "separation"]},
    "narrative": "Left home with her son after threats; needs housing support and follow-up.",
}


@dataclass
class OnCallWorker:
    id: str
    socket: ClientConnection

    def next(self, kind: str, *, timeout: float, alert_id: str | None = None) -> dict[str, Any]:
        """The next message of this type (for this alert), skipping the others."""
        deadline = time.monotonic() + timeout
        while True:
            message: dict[str, Any] = orjson.loads(self.socket.recv(timeout=max(0.1, deadline - time.monotonic())))
            if message["type"] == kind and (alert_id is None or message["alert"]["alert_id"] == alert_id):
                return message


@dataclass
class Demo:
    network: Network
    console: Console
    key_dirs: KeyDirs
    timeout: float = 20.0

    def client(
        self, agency_id: str, *, staff: str = "demo", scopes: tuple[Scope, ...] = ALL_AGENCY_SCOPES
    ) -> httpx.Client:
        """The agency's API as its case-management system calls it for one of its professionals, with a fresh
        token."""
        own = OwnKeys.load(self.key_dirs, agency_id, PublicKeys.load(self.key_dirs))
        token = mint(own, subject=staff, scopes=scopes, lifetime=timedelta(minutes=5))
        return httpx.Client(
            base_url=self.network.agency(agency_id).base_url,
            verify=client_context(self.network.ca_file),
            timeout=10,
            headers={"Authorization": f"Bearer {token}"},
        )

    def post(
        self, agency_id: str, path: str, body: dict[str, Any], *, as_client: httpx.Client | None = None
    ) -> dict[str, Any]:
        if as_client is not None:
            response = as_client.post(path, json=body)
        else:
            with self.client(agency_id) as client:
                response = client.post(path, json=body)
        if response.status_code >= 400:
            raise RuntimeError(f"{agency_id} {path}: {response.status_code} {response.text}")
        result: dict[str, Any] = response.json()
        return result

    def wait_fate(self, agency_id: str, event_id: str) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout
        with self.client(agency_id) as client:
            while time.monotonic() < deadline:
                fate: dict[str, Any] = client.get(f"/v1/events/{event_id}").json()
                if fate["state"] != "pending":
                    return fate
                time.sleep(0.1)
        raise RuntimeError(f"no decision for {event_id} after {self.timeout}s")

    def wait_inbox(self, agency_id: str, event_id: str) -> dict[str, Any] | None:
        deadline = time.monotonic() + self.timeout
        with self.client(agency_id) as client:
            while time.monotonic() < deadline:
                cursor: str | None = None
                while True:
                    params: dict[str, Any] = {"limit": 500, **({"cursor": cursor} if cursor else {})}
                    page = client.get("/v1/inbox", params=params).json()
                    for item in page["items"]:
                        if item["event_id"] == event_id:
                            return dict(item)
                    cursor = page["next_cursor"]
                    if cursor is None:
                        break
                time.sleep(0.1)
        return None

    def say(self, key: str, *, end: str = "\n", **fields: Any) -> None:
        """One line of the story, in the terminal's language (plain text: nothing in it is markup)."""
        self.console.print(escape(phrase(key, **fields)) + end)

    def show(self, title: str, sender: str, sent: dict[str, Any], event_id: str) -> None:
        fate = self.wait_fate(sender, event_id)
        table = Table(title=title, title_justify="left", show_lines=False)
        table.add_column(phrase("cli.demo.category"))
        table.add_column(phrase("cli.demo.sent-by", sender=sender))
        received: dict[str, dict[str, Any] | None] = {}
        for line in fate["recipients"]:
            table.add_column(
                f"{line['recipient']} ({line['sector']})\n{line['outcome']}, {line['legal_basis']}"
                + (f", {phrase('cli.demo.review')}" if line["review"] else "")
            )
            received[line["recipient"]] = (
                self.wait_inbox(line["recipient"], event_id) if line["outcome"] != "denied" else None
            )
        for category in Category:
            if category.value not in sent:
                continue
            row = [category.value, phrase("cli.demo.sent")]
            for line in fate["recipients"]:
                item = received[line["recipient"]]
                if item is not None and category.value in item["data"]:
                    row.append(f"[green]{phrase('cli.demo.received')}[/]")
                else:
                    reason = line["removed"].get(category.value) or line["reason"] or "removed"
                    row.append(f"[red]{phrase('cli.demo.removed')}[/] ({reason})")
            table.add_row(*row)
        self.console.print(table)

    def run(self) -> None:
        subject = new_subject_ref()
        self.say("cli.demo.subject", subject=subject)
        self.post(
            "refuge-liege",
            "/v1/consents",
            {
                "subject_ref": subject,
                "categories": [c.value for c in Category if c != Category.HEALTH],
                "recipients": ["cpas-seraing", "praxis-meuse"],
                "purposes": ["referral"],
                "notice_version": "2026-09",
                "notice_language": "fr",
            },
        )
        self.say("cli.demo.consent")
        for to, reason, title in (
            ("cpas-seraing", "financial_aid", phrase("cli.demo.step1")),
            (
                "praxis-meuse",
                "perpetrator_programme",
                phrase("cli.demo.step2"),
            ),
            ("chr-citadelle", "medical_care", phrase("cli.demo.step3")),
        ):
            body = {"subject_ref": subject, "subject_role": "victim", "recipient": to, "reason": reason, "data": AMINA}
            event = self.post("refuge-liege", "/v1/referrals", body)
            self.show(title, "refuge-liege", AMINA, event["event_id"])
        alert = {
            "subject_ref": subject,
            "subject_role": "victim",
            "severity": "imminent",
            "kind": "threat",
            "recipients": ["police", "justice"],
            "legal_basis": "danger",
            "justification": "Partner announced he will come to the shelter tonight with a knife.",
            "data": AMINA,
        }
        with self.on_call_socket("zp-meuse") as officer:
            event = self.post("refuge-liege", "/v1/alerts", alert)
            self.show(
                phrase("cli.demo.step4"),
                "refuge-liege",
                {**AMINA, "narrative": alert["justification"]},
                event["event_id"],
            )
            if officer is not None:
                self.acknowledge(officer, "refuge-liege", event["event_id"], recipient="zp-meuse")
        first = self.post(
            "refuge-liege",
            "/v1/referrals",
            {
                "subject_ref": subject,
                "subject_role": "victim",
                "recipient": "cpas-seraing",
                "reason": "financial_aid",
                "data": AMINA,
            },
        )
        if self.wait_inbox("cpas-seraing", first["event_id"]) is not None:
            self.post("cpas-seraing", f"/v1/referrals/{first['event_id']}/response", {"decision": "accepted"})
            state = self._referral_state("refuge-liege", first["event_id"], "accepted")
            self.say("cli.demo.step6", state=state)
        self.review(event["event_id"])
        self.consultation()
        self.case_conference(subject)
        self.role_correction()
        self.erasure(subject, requester="refuge-liege")

    def review(self, alert_id: str) -> None:
        """Art. 458bis: a second professional of the raising agency, who reads the justification there, decides."""
        with self.client("refuge-liege", staff="demo-reviewer", scopes=(Scope.DISCLOSURE_REVIEW,)) as reviewer:
            seen = reviewer.get(f"/v1/reviews/{alert_id}").json()
            decided = self.post("refuge-liege", f"/v1/reviews/{alert_id}", {"decision": "approved"}, as_client=reviewer)
        fate = self.wait_fate("refuge-liege", decided["review_event_id"])
        self.say(
            "cli.demo.step7",
            length=len(seen["justification"]),
            status=decided["status"],
            recipients=", ".join(seen["disclosed_to"]),
            state=fate["state"],
        )

    def consultation(self) -> None:
        """An anonymous situation put to the Pôle's consultation desk: no name, no reference to a person."""
        asked = self.post(
            "refuge-liege",
            "/v1/consultations",
            {
                "questions": ["dangerousness", "case_conference"],
                "risk": {"level": "high", "factors": ["threats", "separation", "weapon mentioned"]},
                "narrative": "A woman in our shelter with her son; her former partner threatens to come.",
            },
        )
        desk, consultation_id = asked["desk"], asked["consultation_id"]
        item = self.wait_inbox(desk, consultation_id)
        about = item["subject_ref"] if item else "(not received)"
        self.post(
            desk,
            f"/v1/consultations/{consultation_id}/answer",
            {"severity": "high", "dangerousness": "severe", "advice": ["case_conference", "safety_plan"]},
        )
        answer = self._answered("refuge-liege", consultation_id)
        self.say(
            "cli.demo.step8",
            desk=desk,
            about=about,
            dangerousness=answer["dangerousness"],
            advice=", ".join(answer["advice"]),
        )

    def case_conference(self, subject: str) -> None:
        """Art. 458ter: the Pôle convenes a case conference; under it only its participants receive."""
        convener, participants = "pole-meuse", ["refuge-liege", "cpas-seraing", "zp-meuse"]
        conference = self.post(
            convener,
            "/v1/case-conferences",
            {
                "authorisation": "Code penal art. 458ter",
                "purpose": "risk_assessment",
                "participants": participants,
                "subjects": [subject],
                "ends_at": (datetime.now(UTC) + timedelta(days=30)).isoformat(),
            },
        )
        conference_id = str(conference["conference_id"])
        # Disclosures under it travel on the person's key, the convening on the conference's: wait for the
        # gateway to know the conference before sending under it.
        self.wait_fate(convener, conference["event_id"])
        self.say("cli.demo.step9", convener=convener, participants=", ".join(participants), subject=subject, end="")
        data = {k: AMINA[k] for k in ("identity", "risk", "narrative")}
        for to, title in (
            ("cpas-seraing", phrase("cli.demo.step9a")),
            ("chr-citadelle", phrase("cli.demo.step9b")),
        ):
            body = {
                "subject_ref": subject,
                "subject_role": "victim",
                "recipient": to,
                "reason": "other",
                "reason_comment": "Preparing the case conference.",
                "legal_basis": "case_conference",
                "conference_id": conference_id,
                "data": data,
            }
            event = self.post("refuge-liege", "/v1/referrals", body)
            self.show(title, "refuge-liege", data, event["event_id"])
        self.post(convener, f"/v1/case-conferences/{conference_id}/close", {})
        self.say("cli.demo.closed", convener=convener, end="")

    def role_correction(self) -> None:
        """A person recorded as the aggressor was the victim: the correction reaches every recipient, which is
        told what the right role would not have allowed it, and erases exactly that on one call."""
        other = new_subject_ref()
        self.post(
            "cpas-seraing",
            "/v1/consents",
            {
                "subject_ref": other,
                "categories": ["identity", "contact", "risk", "narrative"],
                "recipients": ["praxis-meuse"],
                "purposes": ["referral"],
                "notice_version": "2026-09",
                "notice_language": "fr",
            },
        )
        data = {k: AMINA[k] for k in ("identity", "contact", "risk", "narrative")}
        body = {
            "subject_ref": other,
            "subject_role": "perpetrator",
            "recipient": "praxis-meuse",
            "reason": "perpetrator_programme",
            "data": data,
        }
        referral = self.post("cpas-seraing", "/v1/referrals", body)
        self.show(
            phrase("cli.demo.step10"),
            "cpas-seraing",
            data,
            referral["event_id"],
        )
        correction = self.post(
            "cpas-seraing",
            f"/v1/subjects/{other}/role-corrections",
            {"role": "victim", "previous": "perpetrator", "reason": "assessment_revised"},
        )
        flagged = self._notices(correction["event_id"], acknowledged=1)
        for notice in flagged:
            disallowed = ", ".join(notice["disallowed"]) or phrase("cli.demo.nothing")
            self.say("cli.demo.step10a", recipient=notice["recipient"], categories=disallowed, end="")
        with self.client("cpas-seraing", scopes=(Scope.SUBJECT_ERASE,)) as officer:
            path = f"/v1/subjects/{other}/role-corrections/{correction['event_id']}/erasure"
            erasure = self.post("cpas-seraing", path, {}, as_client=officer)
        done = self._erasure(erasure["event_id"], agency="cpas-seraing")
        confirmed = ", ".join(
            phrase("cli.demo.erased-count", agency=h["agency"], erased=h["erased"]) for h in done["holders"]
        )
        self.say("cli.demo.step10b", confirmed=confirmed)

    def erasure(self, subject: str, *, requester: str) -> None:
        """The person asks to be erased: every holder deletes and confirms; the audit keeps its metadata."""
        with self.client(requester, scopes=(Scope.SUBJECT_ERASE,)) as officer:
            asked = self.post(
                requester, f"/v1/subjects/{subject}/erasure", {"ground": "consent_withdrawn"}, as_client=officer
            )
        done = self._erasure(asked["event_id"], agency=requester)
        self.say("cli.demo.step11", requester=requester, subject=subject, end="")
        for holder in done["holders"]:
            dispatcher = holder["holder"] == "dispatcher"
            who = phrase("cli.demo.dispatcher", agency=holder["agency"]) if dispatcher else holder["agency"]
            self.say("cli.demo.holder", who=who, at=holder["confirmed_at"], erased=holder["erased"], end="")

    def _notices(self, event_id: str, *, acknowledged: int) -> list[dict[str, Any]]:
        deadline = time.monotonic() + self.timeout
        with self.client("cpas-seraing") as client:
            while time.monotonic() < deadline:
                fate: dict[str, Any] = client.get(f"/v1/events/{event_id}").json()
                notices = [n for n in fate.get("notices", []) if n["acknowledged_at"]]
                if len(notices) >= acknowledged:
                    return notices
                time.sleep(0.1)
        raise RuntimeError(f"no receipt for {event_id} after {self.timeout}s")

    def _erasure(self, erasure_id: str, *, agency: str) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout
        with self.client(agency, scopes=(Scope.SUBJECT_ERASE,)) as officer:
            while time.monotonic() < deadline:
                state: dict[str, Any] = officer.get(f"/v1/erasures/{erasure_id}").json()
                if state["state"] == "confirmed":
                    return state
                time.sleep(0.2)
        raise RuntimeError(f"erasure {erasure_id} not confirmed by every holder after {self.timeout}s")

    @contextmanager
    def on_call_socket(self, agency_id: str) -> Iterator[OnCallWorker | None]:
        """A worker of `agency_id` on call at level 1 right now, connected to the dispatcher's socket."""
        if agency_id not in self.network.dispatched:
            yield None
            return
        rota = Rota(self.network.oncall[agency_id], timezone=self.network.dispatcher.timezone)
        on_call = sorted(rota.on_call(1, datetime.now(UTC)))
        if not on_call:
            yield None
            return
        own = OwnKeys.load(self.key_dirs, agency_id, PublicKeys.load(self.key_dirs))
        token = mint(own, subject=on_call[0], scopes=(Scope.ALERTS_ACK,), lifetime=timedelta(minutes=5))
        url = self.network.dispatcher.base_url.replace("http", "ws", 1) + "/v1/ws"
        tls = client_context(self.network.ca_file) if url.startswith("wss://") else None
        with connect(url, additional_headers={"Authorization": f"Bearer {token}"}, open_timeout=10, ssl=tls) as ws:
            worker = OnCallWorker(id=on_call[0], socket=ws)
            worker.next("snapshot", timeout=self.timeout)
            yield worker

    def acknowledge(self, worker: OnCallWorker, sender: str, alert_id: str, *, recipient: str) -> None:
        page = worker.next("alert", timeout=self.timeout, alert_id=alert_id)["alert"]
        worker.socket.send(orjson.dumps({"type": "ack", "alert_id": alert_id}).decode())
        worker.next("acked", timeout=self.timeout)
        deadline = time.monotonic() + self.timeout
        state = "paged"
        with self.client(sender) as client:
            while time.monotonic() < deadline and state != "acknowledged":
                lines = client.get(f"/v1/events/{alert_id}").json()["recipients"]
                progress = next((r.get("alert") for r in lines if r["recipient"] == recipient), None)
                state = progress["state"] if progress else state
                time.sleep(0.1)
        self.say(
            "cli.demo.step5",
            recipient=recipient,
            worker=worker.id,
            level_name=page["level_name"],
            level=page["level"],
            sender=sender,
            state=state,
        )

    def _answered(self, agency_id: str, consultation_id: str) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout
        with self.client(agency_id) as client:
            while time.monotonic() < deadline:
                seen = client.get(f"/v1/consultations/{consultation_id}").json()
                if seen["state"] == "answered":
                    return dict(seen["answer"])
                time.sleep(0.1)
        raise RuntimeError(f"no answer to consultation {consultation_id} after {self.timeout}s")

    def _referral_state(self, agency_id: str, referral_id: str, expected: str) -> str:
        deadline = time.monotonic() + self.timeout
        with self.client(agency_id) as client:
            while True:
                state = str(client.get(f"/v1/referrals/{referral_id}").json()["state"])
                if state == expected or time.monotonic() > deadline:
                    return state
                time.sleep(0.1)
