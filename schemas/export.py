"""Export the v1 models as JSON Schema files: ``python -m schemas.export``.

One file per API body and one per event type the hub emits (``schemas.events``), named as
the event's ``dataschema`` URL ends. The files are committed; a test fails when they drift
from the models.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from schemas.cloudevents import CloudEventAttributes
from schemas.events import EVENT_DATA, schema_file
from schemas.messages import ReferralCreate, ReferralView, StatusChange

OUT_DIR = Path(__file__).parent / "jsonschema"

MODELS: dict[str, type[BaseModel]] = {
    "referral-create.json": ReferralCreate,
    "status-change.json": StatusChange,
    "referral.json": ReferralView,
    "cloudevent-attributes.json": CloudEventAttributes,
    **{schema_file(event_type): model for event_type, model in EVENT_DATA.items()},
}


def rendered() -> dict[str, str]:
    """File name -> JSON Schema text, exactly as it is committed."""
    return {name: _text(model.model_json_schema()) for name, model in MODELS.items()}


def _text(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main() -> int:
    """Write every schema file; remove files of models that no longer exist."""
    OUT_DIR.mkdir(exist_ok=True)
    texts = rendered()
    for stale in set(p.name for p in OUT_DIR.glob("*.json")) - set(texts):
        (OUT_DIR / stale).unlink()
    for name, text in texts.items():
        (OUT_DIR / name).write_text(text, encoding="utf-8")
    print(f"wrote {len(texts)} schemas to {OUT_DIR}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
