"""The route policy: for each requester -> performer -> referral type, the legal basis,
purpose, the fields the performer may receive, what each side may see of the other's status
changes, the retention period, and how long an open referral may go without a status change.

A policy that names an unknown partner, referral type or field refuses to load and names
the line, so a typo can never silently widen (or block) a data flow.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from schemas.catalogue import Catalogue, Purpose

PERSON_FIELDS = ("person.given_name", "person.family_name", "person.birth_date")
SHIPPED = "routes.v1.yaml"
DEFAULT_IDLE_DAYS = 1095


class PolicyError(ValueError):
    """The policy file is invalid; the message names file and line."""


class StatusShare(BaseModel):
    """What one side of a route may see of the other side's status changes.

    The lifecycle status and its reason code always travel. A business status code travels
    only when listed, the outcome only together with a code that travels, the free-text note
    only with ``notes: true``. The default shares neither.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    notes: bool = False
    business_statuses: tuple[str, ...] = ()


class Route(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    requester: str
    performer: str
    type: str
    purpose: Purpose
    legal_basis: str = Field(min_length=1)
    retention_days: int = Field(gt=0)
    # Storage limitation (Art. 5(1)(e) GDPR) for work nobody reports on: an open referral
    # without a status change for this long is closed by ``hub retention`` (retention-idle),
    # and its retention period runs from then. Three years unless the route says otherwise:
    # long enough for any procedure in the catalogue to report at least once.
    idle_days: int = Field(DEFAULT_IDLE_DAYS, gt=0)
    fields: tuple[str, ...]
    status_to_requester: StatusShare = StatusShare()
    status_to_performer: StatusShare = StatusShare()

    def status_share(self, recipient: str) -> StatusShare:
        """What ``recipient`` may see of the other side's status changes on this route."""
        if recipient == self.requester:
            return self.status_to_requester
        if recipient == self.performer:
            return self.status_to_performer
        return StatusShare()

    @property
    def needs_consent(self) -> bool:
        """True when the only basis of this flow is the person's consent."""
        return self.legal_basis.strip().lower() == "consent"

    @property
    def name(self) -> str:
        """How problems and reports name the route."""
        return f"{self.requester} -> {self.performer} ({self.type})"


@dataclass(frozen=True)
class Policy:
    version: int
    source: str
    routes: tuple[Route, ...]
    lines: tuple[int, ...]  # where each route starts in the file, for error messages
    digest: str  # SHA-256 of the file: the audit trail records which policy was in force

    def route(self, requester: str, performer: str, type_: str) -> Route | None:
        """The route for this flow, or None when the policy does not allow it."""
        for r in self.routes:
            if (r.requester, r.performer, r.type) == (requester, performer, type_):
                return r
        return None

    def status_share(self, requester: str, performer: str, type_: str, viewer: str) -> StatusShare:
        """What ``viewer`` may see of the other side's status changes in this flow (nothing
        when the policy no longer has the route)."""
        route = self.route(requester, performer, type_)
        return route.status_share(viewer) if route is not None else StatusShare()

    def check_partners(self, kinds: dict[str, str], catalogue: Catalogue) -> None:
        """Refuse a policy naming partners that are not registered or of the wrong kind."""
        for line, r in zip(self.lines, self.routes, strict=True):
            for role, pid in (("requester", r.requester), ("performer", r.performer)):
                if pid not in kinds:
                    raise PolicyError(f"{self.source}:{line}: unknown partner {pid!r} ({role})")
            rtype = catalogue.types[r.type]
            if (
                kinds[r.requester] not in rtype.requester
                or kinds[r.performer] not in rtype.performer
            ):
                raise PolicyError(
                    f"{self.source}:{line}: {r.name} contradicts the catalogue's "
                    "requester and performer kinds"
                )


def load_policy(catalogue: Catalogue, path: Path | None = None) -> Policy:
    """Load and check the policy (the shipped one unless ``path`` is given)."""
    if path is None:
        text, source = resources.files("hub.policy").joinpath(SHIPPED).read_text("utf-8"), SHIPPED
    else:
        text, source = path.read_text(encoding="utf-8"), str(path)
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PolicyError(f"{source}: not valid YAML: {exc}") from exc
    lines = _route_lines(node)
    if not isinstance(data, dict) or not isinstance(data.get("routes"), list):
        raise PolicyError(f"{source}: needs 'version' and a list of 'routes'")
    routes = tuple(
        _route(item, catalogue, f"{source}:{line}")
        for item, line in zip(data["routes"], lines, strict=True)
    )
    _no_duplicates(routes, lines, source)
    return Policy(
        version=int(data.get("version", 0)),
        source=source,
        routes=routes,
        lines=tuple(lines),
        digest=hashlib.sha256(text.encode()).hexdigest(),
    )


def _route(item: Any, catalogue: Catalogue, where: str) -> Route:
    try:
        route = Route.model_validate(item)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise PolicyError(f"{where}: {field}: {first['msg']}") from exc
    rtype = catalogue.get(route.type)
    if rtype is None:
        raise PolicyError(f"{where}: unknown referral type {route.type!r}")
    allowed = set(PERSON_FIELDS) | {f"payload.{name}" for name in rtype.payload}
    for field in route.fields:
        if field not in allowed:
            raise PolicyError(f"{where}: unknown field {field!r} for {route.type!r}")
    for side in ("status_to_requester", "status_to_performer"):
        for code in getattr(route, side).business_statuses:
            if code not in rtype.business_statuses:
                raise PolicyError(
                    f"{where}: {side}: unknown business status {code!r} for {route.type!r}"
                )
    return route


def _no_duplicates(routes: tuple[Route, ...], lines: list[int], source: str) -> None:
    seen: dict[tuple[str, str, str], int] = {}
    for route, line in zip(routes, lines, strict=True):
        key = (route.requester, route.performer, route.type)
        if key in seen:
            raise PolicyError(f"{source}:{line}: {route.name} repeats line {seen[key]}")
        seen[key] = line


def _route_lines(node: yaml.Node | None) -> list[int]:
    if not isinstance(node, yaml.MappingNode):
        return []
    for key, value in node.value:
        if key.value == "routes" and isinstance(value, yaml.SequenceNode):
            return [item.start_mark.line + 1 for item in value.value]
    return []


def purposes() -> tuple[str, ...]:
    """The purpose domains a route may name."""
    return tuple(get_args(Purpose))
