"""JSON Schemas of every event type, generated from the pydantic models (the single source)."""

from __future__ import annotations

from pathlib import Path

import orjson

from maillage.core.events import PAYLOAD_MODELS
from maillage.core.status import StatusReport

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas"


def rendered() -> dict[str, bytes]:
    """File name → content, for every event payload and the status report."""
    files: dict[str, bytes] = {}
    for event_type, model in PAYLOAD_MODELS.items():
        schema = {"$schema": "https://json-schema.org/draft/2020-12/schema",
                  "$id": f"https://maillage.be/schemas/{event_type.value}.json",
                  **model.model_json_schema()}
        files[f"{event_type.value}.json"] = orjson.dumps(schema, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
    status = {"$schema": "https://json-schema.org/draft/2020-12/schema",
              "$id": "https://maillage.be/schemas/maillage.status.json", **StatusReport.model_json_schema()}
    files["maillage.status.json"] = orjson.dumps(status, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
    return {name: content + b"\n" for name, content in files.items()}


def stale(directory: Path = SCHEMA_DIR) -> list[str]:
    """Names of the files that differ from what the models generate (missing, changed or left over)."""
    expected = rendered()
    present = {p.name for p in directory.glob("*.json")} if directory.exists() else set()
    changed = [n for n, c in expected.items() if not (directory / n).exists() or (directory / n).read_bytes() != c]
    return sorted(changed + [n for n in present - set(expected)])


def write(directory: Path = SCHEMA_DIR) -> list[str]:
    directory.mkdir(parents=True, exist_ok=True)
    for leftover in {p.name for p in directory.glob("*.json")} - set(rendered()):
        (directory / leftover).unlink()
    for name, content in rendered().items():
        (directory / name).write_bytes(content)
    return sorted(rendered())
