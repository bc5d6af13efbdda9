"""What the gateway's API answers data-protection officers: metadata only, never a payload."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field


class BrokenRecord(BaseModel):
    chain: int = Field(default=0, description="The chain it belongs to: one per partition of the submitted topic.")
    seq: int
    event_id: str
    recorded_at: str


class FullWalkSummary(BaseModel):
    """The last walk of every chain from its first record: the only check that sees an edit which kept the
    records' hashes as they were."""

    id: str
    started_at: datetime
    finished_at: datetime
    records: int
    intact: bool


class ChainReport(BaseModel):
    records: int = Field(description="Audit records covered, chain by chain, in seq order in each.")
    walked: int = Field(
        default=0,
        description="Records hashed by this verification: those after each chain's last signed checkpoint "
        "(all of them in a full walk). The records before it were found intact then, and its link still is.",
    )
    complete: bool = Field(
        default=True,
        description="Every chain was walked to its last record. False: this verification stopped at its limit "
        "(`intact` holds for what it covered, the checkpoints moved that far): ask again to walk on.",
    )
    chains: int = Field(default=1, description="Chains walked: one per partition of the submitted topic.")
    intact: bool = Field(description="Every chain holds.")
    first_broken: BrokenRecord | None = Field(
        description="The first record whose content or link to the previous record does not hold (the first "
        "broken chain's)."
    )
    policy_sha256s: list[str] = Field(description="The policy versions the records were decided under.")
    last_full_walk: FullWalkSummary | None = Field(
        default=None,
        description="The last full walk's result, counted in `intact` and `first_broken`; none yet if null.",
    )


class WalkState(StrEnum):
    RUNNING = "running"
    DONE = "done"
    INTERRUPTED = "interrupted"  # its gateway stopped: ask for another


class WalkStatus(BaseModel):
    """A full walk of every chain from its first record, run in the background."""

    id: str
    state: WalkState
    started_at: datetime
    finished_at: datetime | None
    records_done: int
    records_total: int = Field(description="Known once the walk has counted the chains; 0 before.")
    report: ChainReport | None = Field(description="Once done.")


class DisclosureLine(BaseModel):
    """One recipient's share of one event about the person: which categories it got, and why."""

    recorded_at: str
    event_id: str
    event_type: str
    source: str = Field(description="The agency that sent the event.")
    recipient: str
    recipient_name: str | None = Field(description="None when the agency has left the network since.")
    sector: str
    legal_basis: str
    outcome: str = Field(
        description="`delivered` (everything sent), `filtered` (some categories removed), or `notified` (a notice "
        "about earlier disclosures, e.g. a withdrawal of consent: no data), or `recorded` (a review decision)."
    )
    delivered: list[str]
    removed: dict[str, str] = Field(description="Category withheld from this recipient → why.")
    review: bool = Field(description="Disclosed under `danger` (art. 458bis): queued for a second person's review.")
    legal_reference: str | None = Field(
        default=None, description="Under `legal_obligation`: the court order or the article of law it rests on."
    )
    conference_id: str | None = Field(
        default=None, description="Under `case_conference`: the conference (art. 458ter) it was disclosed under."
    )
    consents: list[str] | None = Field(default=None, description="The consents (ids) the disclosure rested on.")
    decision: str | None = Field(
        default=None,
        description="With outcome `recorded`: a second professional's review of a danger alert's "
        "disclosures (`approved` or `rejected`), the alert being `alert_id`.",
    )
    alert_id: str | None = Field(default=None, description="The alert a review decision is about.")
    notice: dict[str, Any] | None = Field(
        default=None, description="With outcome `notified`: the notice sent (which events, categories, why)."
    )


class DisclosureReport(BaseModel):
    subject_ref: str
    disclosures: list[DisclosureLine] = Field(description="Oldest first, in the audit chain's order.")
    next_cursor: str | None = Field(
        default=None, description="Pass it as `cursor` for the next page; none after the last."
    )
