"""The draft record of processing activities (GDPR Art. 30), generated from the route policy.

docs/privacy.md carries the generated part between two markers; a test fails when it
drifts from the policy, and ``hub policy record --write docs/privacy.md`` renews it.
"""

from __future__ import annotations

from pathlib import Path

from hub.policy.model import Policy, Route, StatusShare
from schemas.catalogue import Catalogue

BEGIN = "<!-- BEGIN generated from the route policy: hub policy record -->"
END = "<!-- END generated -->"

PURPOSES_DE = {
    "residence": "Aufenthaltsrecht",
    "counselling": "Beratung (freiwillig)",
    "education": "Studium",
    "employment": "Arbeitsmarktintegration",
    "recognition": "Anerkennung von Berufsqualifikationen",
}


def render(policy: Policy, catalogue: Catalogue) -> str:
    """The generated markdown: one row per data flow."""
    lines = [
        BEGIN,
        f"Policy `{policy.source}`, version {policy.version}, SHA-256 `{policy.digest[:16]}…`.",
        "",
        "| # | Übermittlung (von → an) | Vorgang | Zweck | Rechtsgrundlage | Datenkategorien "
        "an den Empfänger | Statusmeldungen an die Gegenseite | Löschfrist |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(policy.routes, 1):
        title = catalogue.types[r.type].title
        fields = ", ".join(f"`{f}`" for f in r.fields)
        basis = "Einwilligung (Art. 6 Abs. 1 lit. a DSGVO)" if r.needs_consent else r.legal_basis
        lines.append(
            f"| {i} | {r.requester} → {r.performer} | {title} (`{r.type}`) | "
            f"{PURPOSES_DE[r.purpose]} | {basis} | {fields} | {status_shares(r)} | "
            f"{r.retention_days} Tage nach Abschluss; offen ohne Statusänderung nach "
            f"{r.idle_days} Tagen beendet |"
        )
    lines.append(END)
    return "\n".join(lines)


def status_shares(route: Route) -> str:
    """Per side of the route: which business status codes and whether notes reach it."""
    if route.requester == route.performer:
        return "keine (Vorgang innerhalb von " + route.requester + ")"
    return "<br>".join(
        f"an {side}: {_share(share)}"
        for side, share in (
            (route.requester, route.status_to_requester),
            (route.performer, route.status_to_performer),
        )
    )


def _share(share: StatusShare) -> str:
    codes = ", ".join(f"`{c}`" for c in share.business_statuses)
    shown = f"Status und Codes {codes}" if codes else "nur Status (keine Codes)"
    return f"{shown}; {'mit' if share.notes else 'ohne'} Notizen"


def replace_in(path: Path, generated: str) -> str:
    """The file's text with the generated part replaced."""
    text = path.read_text(encoding="utf-8")
    start, end = text.index(BEGIN), text.index(END) + len(END)
    return text[:start] + generated + text[end:]
