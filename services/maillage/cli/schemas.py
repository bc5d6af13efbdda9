"""JSON Schemas of every event type, generated from the pydantic models (the single source)."""

from __future__ import annotations

from pathlib import Path

import orjson

from maillage.domain.events import PAYLOAD_MODELS
from maillage.domain.status import StatusReport


def rendered() -> dict[str, bytes]:
    """File name → content, for every event payload and the status report."""
    files: dict[str, bytes] = {}
    for event_type, model in PAYLOAD_MODELS.items():
        schema = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": f"https://maillage.be/schemas/{event_type.value}.json",
            **model.model_json_schema(),
        }
        files[f"{event_type.value}.json"] = orjson.dumps(schema, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
    status = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://maillage.be/schemas/maillage.status.json",
        **StatusReport.model_json_schema(),
    }
    files["maillage.status.json"] = orjson.dumps(status, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
    files["asyncapi.json"] = orjson.dumps(asyncapi(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
    return {name: content + b"\n" for name, content in files.items()}


REQUIRED_CE_HEADERS = (
    "ce_id",
    "ce_source",
    "ce_type",
    "ce_specversion",
    "ce_time",
    "ce_subject",
    "ce_subjectrole",
    "ce_legalbasis",
    "ce_purpose",
)
CE_HEADERS = {
    "type": "object",
    "description": "CloudEvents 1.0 attributes in Kafka binary content mode.",
    "required": list(REQUIRED_CE_HEADERS),
    "properties": {
        name: {"type": "string"} for name in (*REQUIRED_CE_HEADERS, "content-type", "ce_recipient", "ce_traceparent")
    },
}


def asyncapi() -> dict[str, object]:
    """An AsyncAPI 3.0 document of the topics, pointing at the generated payload schemas."""
    events = {
        t.value.replace(".", "_"): {
            "name": t.value,
            "contentType": "application/json",
            "headers": CE_HEADERS,
            "payload": {"$ref": f"./{t.value}.json"},
        }
        for t in PAYLOAD_MODELS
    }
    refs = [{"$ref": f"#/components/messages/{name}"} for name in events]
    messages = dict(zip(events, refs, strict=True))
    status = {
        "name": "maillage.status",
        "contentType": "application/json",
        "payload": {"$ref": "./maillage.status.json"},
    }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Maillage topics",
            "version": "1",
            "description": "Consented referrals and safety alerts between agencies, through the consent gateway.",
        },
        "channels": {
            "submitted": {
                "address": "maillage.submitted",
                "messages": messages,
                "description": "Every event a sender submits, keyed by subject_ref.",
            },
            "deliver": {
                "address": "maillage.deliver.{agency_id}",
                "parameters": {"agency_id": {"description": "The recipient agency."}},
                "messages": messages,
                "description": "Filtered events for one agency, keyed by subject_ref.",
            },
            "status": {
                "address": "maillage.status.{agency_id}",
                "parameters": {"agency_id": {"description": "The sender agency, the only one that reads it."}},
                "messages": {"status": {"$ref": "#/components/messages/status"}},
                "description": "Per-recipient decisions about each event an agency submitted, keyed by event id.",
            },
            "audit": {"address": "maillage.audit", "description": "Hash-chained decision records, metadata only."},
            "oncall": {
                "address": "maillage.oncall",
                "description": "What became of each alert at an on-call rota (the dispatcher's reports).",
            },
            "dlq": {
                "address": "maillage.dlq",
                "description": "Records the gateway refused, with dlq_reason; replayable onto submitted.",
            },
            "dlq_of": {
                "address": "maillage.dlq.{writer}",
                "parameters": {"writer": {"description": "The agency (or `dispatcher`) that refused it."}},
                "description": "Records a service could not read, with dlq_reason; one topic per writer.",
            },
        },
        "components": {"messages": {**events, "status": status}},
    }


def stale(directory: Path) -> list[str]:
    """Names of the files that differ from what the models generate (missing, changed or left over)."""
    expected = rendered()
    present = {p.name for p in directory.glob("*.json")} if directory.exists() else set()
    changed = [n for n, c in expected.items() if not (directory / n).exists() or (directory / n).read_bytes() != c]
    return sorted(changed + [n for n in present - set(expected)])


def write(directory: Path) -> list[str]:
    directory.mkdir(parents=True, exist_ok=True)
    for leftover in {p.name for p in directory.glob("*.json")} - set(rendered()):
        (directory / leftover).unlink()
    for name, content in rendered().items():
        (directory / name).write_bytes(content)
    return sorted(rendered())
