"""The policy as operators read it: ``hub policy show`` and what ``hub partners add`` tells."""

from __future__ import annotations

from collections.abc import Mapping

from hub.policy.model import Deny, Party, Policy, Route


def describe(policy: Policy) -> list[str]:
    """Every rule with its basis, reason and what the city must confirm; exceptions last."""
    lines = [
        f"route policy {policy.source}, version {policy.version}, "
        f"{len(policy.grants)} rules, {len(policy.rules) - len(policy.grants)} exceptions"
    ]
    for r in policy.grants:
        lines += [
            f"- {r.name} (line {policy.line_of(r)}): purpose {r.purpose}; "
            f"retention {r.retention_days} days",
            f"    legal basis: {r.legal_basis}",
            f"    reason: {r.basis_reason}",
            f"    fields: {', '.join(r.fields)}",
        ]
        if r.confirm:
            lines.append(f"    NEEDS THE CITY'S CONFIRMATION: {r.confirm}")
    for d in policy.rules:
        if isinstance(d, Deny):
            lines.append(f"- {d.name} (line {policy.line_of(d)}): DENIED: {d.reason}")
    pending = sum(1 for r in policy.grants if r.confirm)
    lines.append(f"{pending} rules need the city's confirmation")
    return lines


def applying(policy: Policy, partner: Party, kinds: Mapping[str, str]) -> list[Route]:
    """The routes that carry ``partner``'s flows, as requester or performer."""
    everyone = {**kinds, partner.id: partner.kind or ""}
    return [r for r in policy.for_partners(everyone) if partner.id in (r.requester, r.performer)]


def route_lines(routes: list[Route]) -> list[str]:
    """One line per route, as requester first, then as performer."""
    return [
        f"  {r.name}: {r.legal_basis}" + (" (needs the city's confirmation)" if r.confirm else "")
        for r in routes
    ]


def no_route_hint(partner: Party) -> str:
    """What to add to the policy when no rule covers a new partner."""
    return (
        f"warning: no route of the policy applies to {partner.id} (kind {partner.kind}); it "
        f"can authenticate but exchange no referrals until a rule names it or its kind, e.g. "
        f"'requester: {{kind: {partner.kind}}}' or 'requester: {partner.id}' in "
        f"hub/policy/routes.v1.yaml (or the file HUB_POLICY_FILE names)"
    )
