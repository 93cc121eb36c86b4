"""The draft record of processing activities (GDPR Art. 30), generated from the route policy.

docs/privacy.md carries the generated part between two markers; a test fails when it
drifts from the policy, and ``hub policy record --write docs/privacy.md`` renews it. The
record needs no database: it names rules (partner kinds and single partners), not the
partners registered at the time.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hub.policy.model import Deny, Policy, Rule, Side, StatusShare
from hub.settings import Settings
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
KINDS_DE = {
    "authority": "jede Ausländerbehörde",
    "university": "jede Hochschule",
    "chamber": "jede Kammer",
    "jobcenter": "jedes Jobcenter",
}
#: Whose data the routes carry, by referral type (Art. 30(1)(c) GDPR).
SUBJECTS_DE = {
    "recognition.assessment": "Anerkennungssuchende mit ausländischer Berufsqualifikation",
    "recognition.adaptation": "Anerkennungssuchende mit teilweiser Gleichwertigkeit",
    "residence.student": "internationale Studierende und Studienbewerber",
    "residence.skilled-worker": "zugewanderte und zuwandernde Fachkräfte",
    "university.enrolment-confirmation": "internationale Studierende",
    "jobcenter.integration": "arbeitsuchende Zugewanderte (Leistungsberechtigte nach SGB II)",
    "counselling.talent-center": "Ratsuchende des International Talent Centers",
}


@dataclass(frozen=True)
class Contacts:
    """Who the record names as controller and data protection officer."""

    controller_name: str
    controller_address: str
    controller_contact: str
    dpo_contact: str

    @classmethod
    def of(cls, settings: Settings | None = None) -> Contacts:
        """From settings; without them the defaults, as docs/privacy.md shows them."""
        if settings is None:
            fields = Settings.model_fields
            return cls(*(str(fields[f].default) for f in cls.__dataclass_fields__))
        return cls(*(str(getattr(settings, f)) for f in cls.__dataclass_fields__))


def render(policy: Policy, catalogue: Catalogue, contacts: Contacts | None = None) -> str:
    """The generated markdown: who is responsible, for whom, and one row per rule."""
    c = contacts or Contacts.of()
    lines = [
        BEGIN,
        f"Policy `{policy.source}`, version {policy.version}, SHA-256 `{policy.digest[:16]}…`.",
        "",
        f"- **Verantwortlicher:** {c.controller_name}, {c.controller_address}; "
        f"Kontakt: {c.controller_contact}.",
        f"- **Datenschutzbeauftragte(r):** {c.dpo_contact}.",
        "- **Kategorien betroffener Personen:** "
        + "; ".join(sorted({SUBJECTS_DE.get(t, t) for t in {r.type for r in policy.grants}}))
        + ".",
        "- **Empfänger:** "
        + ", ".join(sorted({_side(r.performer) for r in policy.grants}))
        + ", jeweils nur mit den Datenkategorien ihrer Route; keine Drittlandübermittlung.",
        *_arrangement(),
        "- **Technische und organisatorische Maßnahmen:** Abschnitt 3 dieses Dokuments; "
        "**Löschkonzept:** Abschnitt 4.",
        "",
        "| # | Von → an | Vorgang | Zweck | Rechtsgrundlage (Begründung) | Verhältnis | "
        "Datenkategorien an den Empfänger | Statusmeldungen an die Gegenseite | Löschfrist |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(policy.grants, 1):
        lines.append(_row(i, r, catalogue, policy.line_of(r)))
    lines += _exceptions(policy)
    lines += _open(policy)
    lines.append(END)
    return "\n".join(lines)


def _arrangement() -> list[str]:
    return [
        "- **Verhältnis der Beteiligten:** Jeder Partner ist für seine eigene Verarbeitung "
        "eigenständig Verantwortlicher; eine Weiterleitung an einen anderen Partner ist eine "
        "Übermittlung zwischen Verantwortlichen, eine Route innerhalb des Amts keine "
        "Übermittlung. Der Hub ist eine Verarbeitung der Stadt (des Amts). Eine gemeinsame "
        "Verantwortlichkeit (Art. 26 DSGVO) wird nicht angenommen; ob der gemeinsame Betrieb "
        "des Hubs eine Vereinbarung nach Art. 26 oder einen Auftragsverarbeitungsvertrag "
        "(Art. 28) mit den Partnern erfordert, muss die Stadt bestätigen.",
    ]


def _row(i: int, r: Rule, catalogue: Catalogue, line: int) -> str:
    title = catalogue.types[r.type].title
    fields = ", ".join(f"`{f}`" for f in r.fields)
    basis = "Einwilligung (Art. 6 Abs. 1 lit. a DSGVO)" if r.needs_consent else r.legal_basis
    if r.confirm:
        basis += " — **von der Stadt zu bestätigen**"
    return (
        f"| {i} | {_side(r.requester)} → {_side(r.performer)} | {title} (`{r.type}`) | "
        f"{PURPOSES_DE[r.purpose]} | {basis} ({r.basis_reason}) | {_relation(r)} | {fields} | "
        f"{status_shares(r)} | {r.retention_days} Tage nach Abschluss; offen ohne "
        f"Statusänderung nach {r.idle_days} Tagen beendet |"
    )


def _relation(r: Rule) -> str:
    if r.requester == r.performer and isinstance(r.requester, str):
        return f"Verarbeitung innerhalb von {r.requester}, keine Übermittlung"
    return "Übermittlung zwischen Verantwortlichen"


def _exceptions(policy: Policy) -> list[str]:
    denies = [r for r in policy.rules if isinstance(r, Deny)]
    if not denies:
        return ["", "Ausnahmen für einzelne Partner: keine."]
    return ["", "Ausnahmen für einzelne Partner (Route geschlossen):", ""] + [
        f"- {_side(d.requester)} → {_side(d.performer)} (`{d.type}`): {d.reason}" for d in denies
    ]


def _open(policy: Policy) -> list[str]:
    pending = [(i, r) for i, r in enumerate(policy.grants, 1) if r.confirm]
    if not pending:
        return ["", "Von der Stadt zu bestätigen: nichts."]
    return ["", "**Von der Stadt zu bestätigen** (die Routen arbeiten bis dahin):", ""] + [
        f"- Nr. {i}, {_side(r.requester)} → {_side(r.performer)} (`{r.type}`): {r.confirm}"
        for i, r in pending
    ]


def _side(side: Side) -> str:
    if isinstance(side, str):
        return side
    return f"{KINDS_DE.get(side.kind, side.kind)} (`{side.kind}`)"


def status_shares(route: Rule) -> str:
    """Per side of the rule: which business status codes and whether notes reach it."""
    if route.requester == route.performer and isinstance(route.requester, str):
        return "keine (Vorgang innerhalb von " + route.requester + ")"
    return "<br>".join(
        f"an {_side(side)}: {_share(share)}"
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
