"""The route policy: for each requester -> performer -> referral type, the legal basis (with
its reason, and what the city still has to confirm), purpose, the fields the performer may
receive, what each side may see of the other's status changes, the retention period, and how
long an open referral may go without a status change.

A side of a rule names one partner (``amt``) or every partner of a kind (``{kind: chamber}``).
A rule naming a single partner is an exception and wins over a kind rule for that partner: it
grants different terms, or ``deny: true`` excludes the partner from the kind rule. Two rules
that could match the same flow at the same specificity refuse to load, naming both lines.

A policy that names an unknown kind, referral type or field refuses to load and names the
line, so a typo can never silently widen (or block) a data flow; partners named by id are
checked against the registered ones when the hub starts (``check_partners``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from schemas.catalogue import Catalogue, Purpose

PERSON_FIELDS = ("person.given_name", "person.family_name", "person.birth_date")
SHIPPED = "routes.v1.yaml"
DEFAULT_IDLE_DAYS = 1095
# Resolved flows kept per policy: partners x partners x types, a few hundred at most.
_MAX_RESOLVED = 10_000


class PolicyError(ValueError):
    """The policy file is invalid; the message names file and line."""


@dataclass(frozen=True)
class Party:
    """A partner as the policy sees it: its id and kind (None when it is not registered)."""

    id: str
    kind: str | None = None


class KindOf(BaseModel):
    """``{kind: university}`` in the policy file: every registered partner of that kind."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str = Field(min_length=1)


Side = str | KindOf


def side_label(side: Side) -> str:
    """How reports name one side of a rule: the partner id, or ``any <kind>``."""
    return side if isinstance(side, str) else f"any {side.kind}"


def _matches(side: Side, party: Party) -> bool:
    if isinstance(side, str):
        return side == party.id
    return party.kind is not None and side.kind == party.kind


class StatusShare(BaseModel):
    """What one side of a route may see of the other side's status changes.

    The lifecycle status and its reason code always travel. A business status code travels
    only when listed, the outcome only together with a code that travels, the free-text note
    only with ``notes: true``. The default shares neither.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    notes: bool = False
    business_statuses: tuple[str, ...] = ()


class Terms(BaseModel):
    """What a rule grants: basis, purpose, fields, status shares, retention."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    purpose: Purpose
    legal_basis: str = Field(min_length=1)
    # One line on why the cited provision carries this flow (the DPO reads it in the record).
    basis_reason: str = Field(min_length=1)
    # What the city's legal and data-protection staff must still decide; the route works
    # meanwhile, and every report lists it as needing confirmation.
    confirm: str | None = Field(None, min_length=1)
    retention_days: int = Field(gt=0)
    # Storage limitation (Art. 5(1)(e) GDPR) for work nobody reports on: an open referral
    # without a status change for this long is closed by ``hub retention`` (retention-idle),
    # and its retention period runs from then. Three years unless the route says otherwise:
    # long enough for any procedure in the catalogue to report at least once.
    idle_days: int = Field(DEFAULT_IDLE_DAYS, gt=0)
    fields: tuple[str, ...]
    status_to_requester: StatusShare = StatusShare()
    status_to_performer: StatusShare = StatusShare()

    @property
    def needs_consent(self) -> bool:
        """True when the only basis of this flow is the person's consent."""
        return self.legal_basis.strip().lower() == "consent"


class Rule(Terms):
    """One granting entry of the policy file, for partners or kinds."""

    requester: Side
    performer: Side
    type: str

    @property
    def name(self) -> str:
        """How problems and reports name the rule."""
        return f"{side_label(self.requester)} -> {side_label(self.performer)} ({self.type})"


class Deny(BaseModel):
    """An exception that keeps a flow closed although a kind rule would open it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    requester: Side
    performer: Side
    type: str
    deny: Literal[True]
    reason: str = Field(min_length=1)

    @property
    def name(self) -> str:
        """How problems and reports name the exception."""
        return f"{side_label(self.requester)} -> {side_label(self.performer)} ({self.type})"


class Route(Terms):
    """One flow between two registered partners, with the terms of the rule that grants it."""

    requester: str
    performer: str
    type: str
    rule: str = ""  # file:line of the rule, for reports

    def status_share(self, recipient: str) -> StatusShare:
        """What ``recipient`` may see of the other side's status changes on this route."""
        if recipient == self.requester:
            return self.status_to_requester
        if recipient == self.performer:
            return self.status_to_performer
        return StatusShare()

    @property
    def name(self) -> str:
        """How problems and reports name the route."""
        return f"{self.requester} -> {self.performer} ({self.type})"


Entry = Rule | Deny


def specificity(entry: Entry) -> int:
    """How many sides name a single partner: the higher wins."""
    return isinstance(entry.requester, str) + isinstance(entry.performer, str)


@dataclass(frozen=True)
class Policy:
    version: int
    source: str
    rules: tuple[Entry, ...]
    lines: tuple[int, ...]  # where each rule starts in the file, for error messages
    digest: str  # SHA-256 of the file: the audit trail records which policy was in force
    _resolved: dict[tuple[Party, Party, str], Route | None] = field(
        default_factory=dict, compare=False, repr=False
    )

    @property
    def grants(self) -> tuple[Rule, ...]:
        """The rules that open flows (exceptions that deny left out)."""
        return tuple(r for r in self.rules if isinstance(r, Rule))

    def line_of(self, entry: Entry) -> int:
        """Where ``entry`` starts in the file."""
        return self.lines[self.rules.index(entry)]

    def route(self, requester: Party, performer: Party, type_: str) -> Route | None:
        """The route for this flow, or None when the policy does not allow it."""
        key = (requester, performer, type_)
        if key in self._resolved:
            return self._resolved[key]
        entry = self._most_specific(requester, performer, type_)
        route = None
        if isinstance(entry, Rule):
            terms = {name: getattr(entry, name) for name in Terms.model_fields}
            route = Route.model_construct(
                **terms,
                requester=requester.id,
                performer=performer.id,
                type=type_,
                rule=f"{self.source}:{self.line_of(entry)}",
            )
        if len(self._resolved) >= _MAX_RESOLVED:
            self._resolved.clear()
        self._resolved[key] = route
        return route

    def status_share(
        self, requester: Party, performer: Party, type_: str, viewer: str
    ) -> StatusShare:
        """What ``viewer`` may see of the other side's status changes in this flow (nothing
        when the policy no longer has the route)."""
        route = self.route(requester, performer, type_)
        return route.status_share(viewer) if route is not None else StatusShare()

    def may_need_consent(self, requester: str, performer: str, type_: str) -> bool:
        """True when a consent rule could carry this flow, partner kinds unknown."""
        return any(
            r.needs_consent
            for r in self.grants
            if r.type == type_
            and (not isinstance(r.requester, str) or r.requester == requester)
            and (not isinstance(r.performer, str) or r.performer == performer)
        )

    def _most_specific(self, requester: Party, performer: Party, type_: str) -> Entry | None:
        matching = [
            r
            for r in self.rules
            if r.type == type_ and _matches(r.requester, requester)
            if _matches(r.performer, performer)
        ]
        # Loading refused rules that could tie, so the most specific one is unique.
        return max(matching, key=specificity, default=None)

    def for_partners(self, kinds: Mapping[str, str]) -> list[Route]:
        """Every flow the policy opens between the given partners (id -> kind)."""
        parties = [Party(pid, kind) for pid, kind in sorted(kinds.items())]
        types = sorted({r.type for r in self.rules})
        found = (self.route(req, perf, t) for t in types for req in parties for perf in parties)
        return [r for r in found if r is not None]

    def check_partners(self, kinds: Mapping[str, str], catalogue: Catalogue) -> None:
        """Refuse a policy naming partners that are not registered or of the wrong kind."""
        for line, r in zip(self.lines, self.rules, strict=True):
            rtype = catalogue.types[r.type]
            for role, side, allowed in (
                ("requester", r.requester, rtype.requester),
                ("performer", r.performer, rtype.performer),
            ):
                if not isinstance(side, str):
                    continue
                if side not in kinds:
                    raise PolicyError(f"{self.source}:{line}: unknown partner {side!r} ({role})")
                if kinds[side] not in allowed:
                    raise PolicyError(
                        f"{self.source}:{line}: {r.name} contradicts the catalogue's "
                        f"{role} kinds ({side} is a {kinds[side]})"
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
    rules = tuple(
        _entry(item, catalogue, f"{source}:{line}")
        for item, line in zip(data["routes"], lines, strict=True)
    )
    _no_ties(rules, lines, source)
    return Policy(
        version=int(data.get("version", 0)),
        source=source,
        rules=rules,
        lines=tuple(lines),
        digest=hashlib.sha256(text.encode()).hexdigest(),
    )


def _entry(item: Any, catalogue: Catalogue, where: str) -> Entry:
    model: type[Entry] = Deny if isinstance(item, dict) and "deny" in item else Rule
    try:
        entry = model.model_validate(item)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise PolicyError(f"{where}: {loc}: {first['msg']}") from exc
    rtype = catalogue.get(entry.type)
    if rtype is None:
        raise PolicyError(f"{where}: unknown referral type {entry.type!r}")
    for role, side, allowed in (
        ("requester", entry.requester, rtype.requester),
        ("performer", entry.performer, rtype.performer),
    ):
        if isinstance(side, KindOf) and side.kind not in catalogue.partner_kinds:
            raise PolicyError(f"{where}: {role}: unknown partner kind {side.kind!r}")
        if isinstance(side, KindOf) and side.kind not in allowed:
            raise PolicyError(
                f"{where}: {entry.name} contradicts the catalogue's {role} kinds "
                f"({', '.join(allowed)})"
            )
    if isinstance(entry, Rule):
        _check_terms(entry, rtype.payload, rtype.business_statuses, where)
    return entry


def _check_terms(rule: Rule, payload: Iterable[str], statuses: Iterable[str], where: str) -> None:
    allowed = set(PERSON_FIELDS) | {f"payload.{name}" for name in payload}
    for name in rule.fields:
        if name not in allowed:
            raise PolicyError(f"{where}: unknown field {name!r} for {rule.type!r}")
    known = set(statuses)
    for side in ("status_to_requester", "status_to_performer"):
        for code in getattr(rule, side).business_statuses:
            if code not in known:
                raise PolicyError(
                    f"{where}: {side}: unknown business status {code!r} for {rule.type!r}"
                )


def _no_ties(rules: tuple[Entry, ...], lines: list[int], source: str) -> None:
    """Refuse two rules that could match the same flow at the same specificity.

    Partner kinds are not known when the file loads, so a partner id facing a kind on the
    same side counts as a possible match: such a pair needs a rule naming both partners.
    """
    for i, a in enumerate(rules):
        for b, line in zip(rules[:i], lines, strict=False):
            if a.type != b.type or specificity(a) != specificity(b):
                continue
            if not (_may_meet(a.requester, b.requester) and _may_meet(a.performer, b.performer)):
                continue
            if (a.requester, a.performer) == (b.requester, b.performer):
                raise PolicyError(f"{source}:{lines[i]}: {a.name} repeats line {line}")
            raise PolicyError(
                f"{source}:{lines[i]}: {a.name} and line {line} ({b.name}) may both match "
                "the same flow at the same specificity; add a rule naming both partners "
                "or narrow one of them"
            )


def _may_meet(a: Side, b: Side) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        return a == b
    if isinstance(a, KindOf) and isinstance(b, KindOf):
        return a.kind == b.kind
    return True


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
