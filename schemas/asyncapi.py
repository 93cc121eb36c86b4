"""The hub's Kafka contracts as an AsyncAPI 3.0 document: ``python -m schemas.asyncapi``.

Writes ``docs/asyncapi.json`` (committed; a test fails when it drifts from the models). Each
message is a CloudEvents 1.0 record in Kafka binary mode: ``ce_`` headers, the person
pseudonym as key, the JSON ``data`` as value. The event data schemas are the ones
``schemas.export`` writes, inlined under ``components.schemas`` so the document stands alone.
Topic names and partition counts are the defaults of the hub's settings and of
deploy/k8s/base/kafka-topics.yaml; a test holds the three together.
"""

from __future__ import annotations

import json
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from schemas.asyncapi_examples import EXAMPLES
from schemas.cloudevents import CONTENT_TYPE, SPECVERSION, EventType
from schemas.events import EVENT_DATA, dataschema

OUT = Path(__file__).resolve().parents[1] / "docs" / "asyncapi.json"

EVENTS_TOPIC = "hub.events.v1"
DELIVERIES_TOPIC = "hub.deliveries.{partner}.v1"
DEADLETTER_TOPIC = "hub.deadletter.v1"
AUDIT_TOPIC = "hub.audit.checkpoints.v1"
#: Topic (or pattern) -> (partitions, retention.ms), as deploy/k8s/base/kafka-topics.yaml.
TOPICS = {
    EVENTS_TOPIC: (6, 2_592_000_000),
    DELIVERIES_TOPIC: (3, 2_592_000_000),
    DEADLETTER_TOPIC: (1, 7_776_000_000),
    AUDIT_TOPIC: (1, -1),
}
KAFKA_BINDING = "0.5.0"
PERSON_KEY = {
    "type": "string",
    "pattern": r"^p_[A-Za-z0-9_-]{16,64}$",
    "description": "The person pseudonym (= ce_partitionkey): one person's events stay in order.",
}
#: Message name -> event type, for the canonical log.
CANONICAL = {
    "referralRequested": EventType.REFERRAL_REQUESTED,
    "referralStatusChanged": EventType.REFERRAL_STATUS_CHANGED,
    "referralDelivered": EventType.REFERRAL_DELIVERED,
    "referralDeliveryFailed": EventType.REFERRAL_DELIVERY_FAILED,
    "referralDeadlineDue": EventType.REFERRAL_DEADLINE_DUE,
    "personErased": EventType.PERSON_ERASED,
}
SUMMARIES = {
    EventType.REFERRAL_REQUESTED: "A partner (or staff) requested a referral from a performer.",
    EventType.REFERRAL_STATUS_CHANGED: "A referral's status changed (FHIR Task states); "
    "the hub's own closings (erasure, retention) are status changes too.",
    EventType.REFERRAL_DELIVERED: "A routed event reached its recipient.",
    EventType.REFERRAL_DELIVERY_FAILED: "The recipient rejected a routed event (4xx).",
    EventType.REFERRAL_DEADLINE_DUE: "A deadline clock reached its warning time or expired.",
    EventType.PERSON_ERASED: "The person's data key was deleted (crypto-shredding).",
}
#: Message name -> event type, for the router's copies on a partner's delivery topic.
ROUTED = {
    "routedReferralRequested": EventType.REFERRAL_REQUESTED,
    "routedReferralStatusChanged": EventType.REFERRAL_STATUS_CHANGED,
    "routedPersonErased": EventType.PERSON_ERASED,
}


def document() -> dict[str, Any]:
    """The AsyncAPI 3.0.0 document."""
    schemas = _schemas()
    messages = {
        **{name: _event_message(name, t, routed=False) for name, t in CANONICAL.items()},
        **{name: _event_message(name, t, routed=True) for name, t in ROUTED.items()},
        "auditCheckpointSigned": _checkpoint_message(),
        "deadLetter": _dead_letter_message(),
    }
    return {
        "asyncapi": "3.0.0",
        "id": "urn:de:duisburg:talenthub",
        "info": _info(),
        "defaultContentType": CONTENT_TYPE,
        "servers": _servers(),
        "channels": _channels(),
        "operations": _operations(),
        "components": {
            "schemas": schemas,
            "messages": messages,
            "securitySchemes": {
                "scram": {
                    "type": "scramSha512",
                    "description": "SASL/SCRAM-SHA-512 over TLS, one Strimzi KafkaUser per "
                    "component (deploy/k8s/base/kafka-users.yaml).",
                }
            },
        },
    }


def _info() -> dict[str, Any]:
    return {
        "title": "Talent Hub events",
        "version": metadata.version("talent-hub"),
        "description": (
            "The Kafka topics of Talent Hub, the partner integration hub of Duisburg's "
            "International Talent Center. Every record is a CloudEvents 1.0 event in Kafka "
            "binary mode: attributes as `ce_` headers, `content-type: application/json`, the "
            "JSON `data` as the value, the person pseudonym as the key. Any Kafka client can "
            "read a topic without the hub's code. `ce_dataschema` names the JSON Schema of the "
            "data; the gateway serves it at `/schemas/<file>`."
        ),
        "contact": {"name": "Talent Hub, International Talent Center Duisburg"},
        "license": {"name": "Apache-2.0", "url": "https://www.apache.org/licenses/LICENSE-2.0"},
    }


def _servers() -> dict[str, Any]:
    return {
        "production": {
            "host": "talent-hub-kafka-bootstrap:9093",
            "protocol": "kafka-secure",
            "description": (
                "Apache Kafka (KRaft) run by Strimzi in the hub's namespace: the `scram` "
                "listener, TLS with SCRAM-SHA-512 client authentication "
                "(deploy/k8s/base/kafka.yaml). Reachable only from the hub's pods."
            ),
            "security": [{"$ref": "#/components/securitySchemes/scram"}],
        },
        "development": {
            "host": "127.0.0.1:{port}",
            "protocol": "kafka",
            "description": (
                "The embedded Kafka-protocol broker `hub up` starts when "
                "HUB_KAFKA_BOOTSTRAP_SERVERS is unset: plaintext, loopback only, memory only. "
                "The port is free-chosen at start; `hub up` writes the address to "
                "`<data dir>/kafka.bootstrap`."
            ),
            "variables": {"port": {"description": "The broker's port.", "examples": ["9092"]}},
        },
    }


def _channels() -> dict[str, Any]:
    def refs(names: list[str]) -> dict[str, Any]:
        return {n: {"$ref": f"#/components/messages/{n}"} for n in names}

    return {
        "events": {
            "address": EVENTS_TOPIC,
            "title": "Canonical event log",
            "description": "Every event the hub records, in full (personal fields encrypted "
            "with the person's data key), keyed by person pseudonym.",
            "messages": refs(list(CANONICAL)),
            "bindings": _binding(EVENTS_TOPIC),
        },
        "deliveries": {
            "address": DELIVERIES_TOPIC,
            "title": "Deliveries to one partner",
            "description": "What the router routed to one partner: each recipient's own copy "
            "of an event, with only the fields its route policy allows (`ce_recipient` names "
            "it). The event id stays the same, so every later hop deduplicates on it.",
            "parameters": {
                "partner": {
                    "description": "A registered partner's id.",
                    "examples": ["amt", "ude", "ihk-fosa", "hwk", "jobcenter"],
                }
            },
            "messages": refs(list(ROUTED)),
            "bindings": _binding(DELIVERIES_TOPIC, named=False),
        },
        "deadLetters": {
            "address": DEADLETTER_TOPIC,
            "title": "Dead letters",
            "description": "Records a consumer could not apply, and deliveries a partner "
            "rejected (4xx), copied unchanged with `dlq_` error headers; staff replay them.",
            "messages": refs(["deadLetter"]),
            "bindings": _binding(DEADLETTER_TOPIC),
        },
        "auditCheckpoints": {
            "address": AUDIT_TOPIC,
            "title": "Audit checkpoints",
            "description": "Signed checkpoints of the audit log (RFC 9162 style), the copy "
            "outside the database; kept forever, one partition so they stay in order.",
            "messages": refs(["auditCheckpointSigned"]),
            "bindings": _binding(AUDIT_TOPIC),
        },
    }


def _binding(topic: str, *, named: bool = True) -> dict[str, Any]:
    partitions, retention = TOPICS[topic]
    kafka: dict[str, Any] = {
        "partitions": partitions,
        "topicConfiguration": {"retention.ms": retention, "cleanup.policy": ["delete"]},
        "bindingVersion": KAFKA_BINDING,
    }
    return {"kafka": ({"topic": topic} if named else {}) | kafka}


def _operations() -> dict[str, Any]:
    def op(action: str, channel: str, names: list[str], summary: str) -> dict[str, Any]:
        return {
            "action": action,
            "channel": {"$ref": f"#/channels/{channel}"},
            "summary": summary,
            "messages": [{"$ref": f"#/channels/{channel}/messages/{n}"} for n in names],
        }

    return {
        "publishEvents": op(
            "send", "events", list(CANONICAL), "The relay publishes committed outbox events."
        ),
        "consumeEvents": op(
            "receive",
            "events",
            list(CANONICAL),
            "The hub's consumer groups (router, timeline, deadlines) apply each event once.",
        ),
        "routeToPartner": op(
            "send", "deliveries", list(ROUTED), "The router stages one copy per recipient."
        ),
        "deliverToPartner": op(
            "receive",
            "deliveries",
            list(ROUTED),
            "A partner's delivery consumer pushes each copy to the partner's endpoint, or "
            "files it in the partner's pull inbox.",
        ),
        "deadLetter": op(
            "send", "deadLetters", ["deadLetter"], "A consumer sets aside a record it cannot apply."
        ),
        "replayDeadLetters": op(
            "receive", "deadLetters", ["deadLetter"], "Staff inspect and replay dead letters."
        ),
        "publishAuditCheckpoints": op(
            "send",
            "auditCheckpoints",
            ["auditCheckpointSigned"],
            "The audit sequencer publishes each signed checkpoint; anyone holding the "
            "verifier key can check them.",
        ),
    }


def _event_message(name: str, event_type: str, *, routed: bool) -> dict[str, Any]:
    model = EVENT_DATA[event_type]
    message: dict[str, Any] = {
        "name": event_type,
        "title": _title(model) + (" (a partner's copy)" if routed else ""),
        "summary": SUMMARIES[event_type],
        "contentType": CONTENT_TYPE,
        "headers": _headers(event_type, routed=routed),
        "payload": {"$ref": f"#/components/schemas/{model.__name__}"},
        "bindings": {"kafka": {"key": PERSON_KEY, "bindingVersion": KAFKA_BINDING}},
    }
    if routed:
        message["description"] = (
            "The recipient's copy: the fields its route policy allows, the rest left out."
        )
    if name in EXAMPLES:
        message["examples"] = [_example(event_type, routed=routed, **EXAMPLES[name])]
    return message


def _checkpoint_message() -> dict[str, Any]:
    event_type = EventType.AUDIT_CHECKPOINT_SIGNED
    model = EVENT_DATA[event_type]
    return {
        "name": event_type,
        "title": _title(model),
        "summary": "A signed tree head of the audit log.",
        "contentType": CONTENT_TYPE,
        "headers": _headers(event_type, routed=False, subject="The tree size.", source="/audit"),
        "payload": {"$ref": f"#/components/schemas/{model.__name__}"},
        "bindings": {
            "kafka": {
                "key": {"type": "string", "description": "The log's origin (ce_partitionkey)."},
                "bindingVersion": KAFKA_BINDING,
            }
        },
        "examples": [_example(event_type, routed=False, **EXAMPLES["auditCheckpointSigned"])],
    }


def _dead_letter_message() -> dict[str, Any]:
    dlq = {
        "dlq_reason": "What went wrong (at most 1000 characters).",
        "dlq_original_topic": "The topic the record came from.",
        "dlq_original_partition": "Its partition, in decimal.",
        "dlq_original_offset": "Its offset, in decimal.",
        "dlq_attempts": "How often the consumer tried, in decimal.",
        "dlq_consumer": "The consumer group that gave up.",
    }
    return {
        "name": "dead-letter",
        "title": "Dead letter",
        "summary": "A record set aside: its key, value and headers unchanged, plus dlq_ headers.",
        "headers": {
            "type": "object",
            "required": sorted(dlq),
            "properties": {k: {"type": "string", "description": v} for k, v in dlq.items()},
            "description": "The original record's headers (its ce_ attributes, when it had "
            "them) followed by these.",
        },
        "payload": {"description": "The original record's value, byte for byte."},
        "bindings": {
            "kafka": {
                "key": {"type": "string", "description": "The original record's key."},
                "bindingVersion": KAFKA_BINDING,
            }
        },
    }


def _headers(
    event_type: str,
    *,
    routed: bool,
    subject: str = "The referral id, where there is one.",
    source: str = "/partners/<acting partner>",
) -> dict[str, Any]:
    props: dict[str, Any] = {
        "ce_specversion": {"type": "string", "const": SPECVERSION},
        "ce_id": {"type": "string", "format": "uuid", "description": "The event id (dedup key)."},
        "ce_source": {"type": "string", "description": f"`{source}`."},
        "ce_type": {"type": "string", "const": event_type},
        "ce_time": {"type": "string", "format": "date-time", "description": "When it occurred."},
        "ce_subject": {"type": "string", "description": subject},
        "ce_dataschema": {"type": "string", "format": "uri", "const": dataschema(event_type)},
        "ce_partitionkey": {"type": "string", "description": "The record key."},
        "content-type": {"type": "string", "const": CONTENT_TYPE},
        "traceparent": {"type": "string", "description": "W3C Trace Context."},
        "tracestate": {"type": "string", "description": "W3C Trace Context."},
    }
    required = ["ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time"]
    required += ["ce_dataschema", "ce_partitionkey", "content-type"]
    if routed:
        props["ce_recipient"] = {"type": "string", "description": "The partner this copy is for."}
        required.append("ce_recipient")
    elif event_type in ROUTED.values():
        props["ce_routed"] = {
            "type": "string",
            "const": "1",
            "description": "Present when the copies were staged with the event itself; the "
            "router passes such events by.",
        }
    return {
        "type": "object",
        "description": "CloudEvents 1.0 Kafka binary mode; other ce_ headers are extensions.",
        "required": required,
        "properties": props,
    }


def _example(event_type: str, *, routed: bool, headers: dict[str, str], payload: Any) -> Any:
    head = {
        "ce_specversion": SPECVERSION,
        **headers,
        "ce_type": event_type,
        "ce_dataschema": dataschema(event_type),
        "content-type": CONTENT_TYPE,
    }
    if routed:
        head["ce_recipient"] = "amt"
    return {"name": "example", "headers": head, "payload": payload}


def _title(model: type[BaseModel]) -> str:
    name = model.__name__
    return "".join(f" {c}" if c.isupper() and i else c for i, c in enumerate(name))


def _schemas() -> dict[str, Any]:
    """Each event model's JSON Schema, with its shared definitions beside it."""
    out: dict[str, Any] = {}
    for model in EVENT_DATA.values():
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, definition in {**schema.pop("$defs", {}), model.__name__: schema}.items():
            if out.setdefault(name, definition) != definition:
                raise ValueError(f"two different schemas named {name}")
    return dict(sorted(out.items()))


def text() -> str:
    """The document exactly as it is committed."""
    return json.dumps(document(), indent=2, ensure_ascii=False) + "\n"


def main() -> int:
    """Write docs/asyncapi.json."""
    OUT.write_text(text(), encoding="utf-8")
    print(f"wrote {OUT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
