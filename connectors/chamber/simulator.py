"""Simulated chamber recognition service (IHK FOSA / HWK) for tests and demos.

It plays the recognition procedure of the BQFG: receipt, confirmation within the month,
a request for missing documents (which pauses the decision clock), the complete file, and a
decision of partial equivalence, the case that spawns an adaptation qualification.
"""

from __future__ import annotations

import logging
import uuid
from datetime import date
from typing import Any

from fastapi import FastAPI

from connectors.simulator import Delivery, HubClient, Progression, Step, create_simulator_app

KIND = "chamber"

log = logging.getLogger(__name__)

PROGRESSIONS: dict[str, list[Step]] = {
    "recognition.assessment": [
        (2.0, {"status": "received", "business_status": "APPLICATION_RECEIVED"}),
        (3.0, {"status": "accepted", "business_status": "RECEIPT_CONFIRMED"}),
        (
            3.0,
            {
                "status": "on-hold",
                "business_status": "DOCUMENTS_REQUESTED",
                "reason": "awaiting-client-documents",
            },
        ),
        (5.0, {"status": "in-progress", "business_status": "FILE_COMPLETE"}),
        (
            8.0,
            {
                "status": "completed",
                "business_status": "DECISION_PARTIAL_EQUIVALENCE",
                "outcome": "partial-equivalence",
            },
        ),
    ],
}


def request_adaptation(delivery: Delivery, hub: HubClient) -> None:
    """After a partial equivalence, ask the Amt for the adaptation qualification (§ 16d)."""
    body = delivery.body if isinstance(delivery.body, dict) else {}
    message = {
        "meldungsart": "ANPASSUNGSQUALIFIZIERUNG",
        "nachricht_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"adaptation:{delivery.event_id}")),
        "aktenzeichen": f"SIM-{uuid.uuid4().int % 10**8:08d}",
        "vermittlung_id": delivery.referral_id,
        "person_pseudonym": body.get("person_pseudonym"),
        "antragsteller": body.get("antragsteller"),
        "referenzberuf": body.get("referenzberuf") or "unbekannt",
        "bescheiddatum": date.today().isoformat(),
    }
    status = hub.send_native(KIND, message)
    log.info("simulator.adaptation_requested", extra={"status": status})


def build(*, time_scale: float = 1.0, **options: Any) -> FastAPI:
    """A simulated chamber; ``options`` are those of ``create_simulator_app`` but kind."""
    progression = Progression(PROGRESSIONS, time_scale=time_scale, then=request_adaptation)
    return create_simulator_app(kind=KIND, progression=progression, **options)
