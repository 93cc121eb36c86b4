"""The Art. 15 report as a self-contained HTML page in the person's language, and writing the
report files so that only their owner can read them.

Every value is escaped (``Words``); the page loads nothing from elsewhere and prints on
plain paper. Labels replace every catalogue code, display names every partner id.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from hub.privacy.report_words import NOTHING, Words, table
from schemas.labels import DEFAULT_LANGUAGE, RIGHT_TO_LEFT

RIGHTS = ("access", "rectification", "erasure", "restriction", "objection", "withdrawal")
HISTORY_HEADS = (
    "col.when",
    "col.status",
    "col.business_status",
    "col.reason",
    "col.outcome",
    "col.note",
    "col.by",
)
DASH = " \N{EN DASH} "
SUPERVISOR_ADDRESS = ("Kavalleriestraße 2-4", "40213 Düsseldorf", "poststelle@ldi.nrw.de")


def render_html(report: dict[str, Any], language: str | None = None) -> str:
    """The report as a self-contained HTML page in ``language`` (default: the report's)."""
    w = Words(language or report.get("language") or DEFAULT_LANGUAGE)
    direction = "rtl" if w.language in RIGHT_TO_LEFT else "ltr"
    erased = (
        f'<p class="erased">{w.t("erased", at=w.when(report["erased_at"]))}</p>\n'
        if report.get("erased_at")
        else ""
    )
    return f"""<!doctype html>
<html lang="{w.language}" dir="{direction}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{w.t("title")}</title>
<style>{STYLE}</style>
</head><body>
<h1>{w.t("title")}</h1>
<p>{w.t("intro")}</p>
<p>{w.t("generated", at=w.when(report["generated_at"]))}</p>
{erased}{_controller(report, w)}{_person(report, w)}{_referrals(report, w)}{_timeline(report, w)}\
{_consents(report, w)}{_holds(report, w)}{_deliveries(report, w)}{_reads(report, w)}\
{_staff_views(report, w)}{_art15(report, w)}</body></html>
"""


def write_private(path: Path, text: str, *, force: bool = False) -> None:
    """Write ``text`` to a new file only its owner can read (0600); an existing file is kept
    unless ``force``, and then replaced by a new file rather than rewritten in its mode."""
    if force and path.exists():
        path.unlink()
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)


def _dl(items: list[tuple[str, str]]) -> str:
    """Terms and values, both already escaped."""
    return "<dl>" + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in items) + "</dl>\n"


def _controller(report: dict[str, Any], w: Words) -> str:
    c = report["controller"]
    return f"<h2>{w.t('section.controller')}</h2>\n" + _dl(
        [
            (w.t("controller.name"), w.value(c["name"])),
            (w.t("controller.address"), w.value(c["address"])),
            (w.t("controller.contact"), w.value(c["contact"])),
            (w.t("controller.dpo"), w.value(c["dpo_contact"])),
        ],
    )


def _person(report: dict[str, Any], w: Words) -> str:
    p = report["person"]
    facts = _dl(
        [
            (w.t("person.pseudonym"), w.value(p["pseudonym"])),
            (w.code("field", "given_name"), w.value(p["given_name"])),
            (w.code("field", "family_name"), w.value(p["family_name"])),
            (w.code("field", "birth_date"), w.day(p["birth_date"])),
            (w.t("person.created"), w.when(p["created_at"])),
        ],
    )
    refs = [
        [w.partner(r["partner"]), w.value(r["reference"]), w.when(r["created_at"])]
        for r in p["partner_references"]
    ]
    return (
        f"<h2>{w.t('section.person')}</h2>\n{facts}<h3>{w.t('section.references')}</h3>\n"
        + table(w, ["col.partner", "col.reference", "col.when"], refs)
    )


def _referrals(report: dict[str, Any], w: Words) -> str:
    parts = [f"<h2>{w.t('section.referrals')}</h2>\n"]
    if not report["referrals"]:
        parts.append(f"<p>{w.t('none')}</p>\n")
    for r in report["referrals"]:
        parts.append(_referral(r, w))
    return "".join(parts)


def _referral(r: dict[str, Any], w: Words) -> str:
    route = w.t(
        "referral.route",
        requester=w.partner(r["requester"]),
        performer=w.partner(r["performer"]),
    )
    status = w.code("status", r["status"])
    if r["business_status"]:
        status += DASH + w.code("business", r["business_status"])
    storage = NOTHING
    if r["retention_days"]:
        storage = w.t(
            "referral.storage.text",
            retention=w.t("days", n=str(r["retention_days"])),
            idle=w.t("days", n=str(r["idle_days"])),
        )
    facts = _dl(
        [
            (w.t("referral.status"), status),
            (w.t("referral.created"), w.when(r["created_at"])),
            (w.t("referral.purpose"), w.code("purpose", r["purpose"])),
            (w.t("referral.legal_basis"), w.basis(r["legal_basis"])),
            (w.t("referral.storage"), storage),
        ],
    )
    shredded = (
        f"<p>{w.t('referral.shredded', at=w.when(r['shredded_at']))}</p>\n"
        if r["shredded_at"]
        else ""
    )
    payload = [[w.code("field", f["field"]), w.day(f["value"])] for f in r["payload"]]
    return (
        f'<section class="referral"><h3>{w.code("type", r["type"])}</h3>\n<p>{route}</p>\n'
        f"{facts}{shredded}<h4>{w.t('referral.payload')}</h4>\n"
        f"<p>{w.t('referral.payload.source', partner=w.partner(r['requester']))}</p>\n"
        + table(w, ["col.field", "col.value"], payload)
        + f"<h4>{w.t('referral.history')}</h4>\n"
        + table(
            w,
            [*HISTORY_HEADS],
            [_change(h, w) for h in r["history"]],
        )
        + f"<h4>{w.t('referral.notes')}</h4>\n"
        + table(
            w,
            ["col.when", "col.purpose", "col.text"],
            [
                [w.when(n["created_at"]), w.code("purpose", n["purpose"]), w.value(n["text"])]
                for n in r["staff_notes"]
            ],
        )
        + f"<h4>{w.t('referral.clocks')}</h4>\n"
        + table(
            w,
            ["col.clock", "col.started", "col.due", "col.state", "col.source"],
            [
                [
                    w.code("clock", c["name"]),
                    w.when(c["started_at"]),
                    w.when(c["due_at"]),
                    w.code("clock_state", c["state"]),
                    w.t("hub"),
                ]
                for c in r["clocks"]
            ],
        )
        + "</section>\n"
    )


def _change(h: dict[str, Any], w: Words) -> list[str]:
    return [
        w.when(h["occurred_at"]),
        w.code("status", h["status"]),
        w.code("business", h["business_status"]),
        w.code("reason", h["reason"]),
        w.value(h["outcome"]),
        w.value(h["note"]),
        w.partner(h["set_by"]),
    ]


def _timeline(report: dict[str, Any], w: Words) -> str:
    rows = [
        [
            w.when(e["occurred_at"]),
            w.t(f"message.{e['event']}"),
            w.code("type", e["referral_type"]),
            w.code("status", e["status"]) + _business(e, w),
            w.code("purpose", e["purpose"]),
            w.partner(e["source"]),
        ]
        for e in report["timeline"]
    ]
    heads = ["col.when", "col.event", "col.referral", "col.status", "col.purpose", "col.source"]
    return f"<h2>{w.t('section.timeline')}</h2>\n" + table(w, heads, rows)


def _business(e: dict[str, Any], w: Words) -> str:
    return DASH + w.code("business", e["business_status"]) if e.get("business_status") else ""


def _consents(report: dict[str, Any], w: Words) -> str:
    rows = [
        [
            w.code("purpose", c["purpose"]),
            ", ".join(w.partner(p) for p in c["partners"]) or NOTHING,
            ", ".join(w.code("purpose", p) for p in c["shared_with_purposes"]) or NOTHING,
            w.day(c["granted_on"]),
            w.when(c["withdrawn_at"]),
            w.value(c["notice_language"]),
            w.value(c["evidence"]),
            w.partner(c["recorded_by"]),
        ]
        for c in report["consents"]
    ]
    heads = ["col.purpose", "col.partners", "col.shared_with", "col.granted", "col.withdrawn"]
    heads += ["col.language", "col.evidence", "col.source"]
    return f"<h2>{w.t('section.consents')}</h2>\n" + table(w, heads, rows)


def _holds(report: dict[str, Any], w: Words) -> str:
    rows = [
        [
            w.when(h["held_at"]),
            w.partner(h["recipient"]),
            w.t(f"message.{h['message']}"),
            w.when(h["released_at"]),
        ]
        for h in report["holds"]
    ]
    heads = ["col.held", "col.recipient", "col.message", "col.released"]
    return f"<h2>{w.t('section.holds')}</h2>\n<p>{w.t('holds.text')}</p>\n" + table(w, heads, rows)


def _deliveries(report: dict[str, Any], w: Words) -> str:
    rows = [
        [
            w.when(d["at"]),
            w.partner(d["recipient"]),
            w.t(f"message.{d['message']}"),
            w.basis(d["legal_basis"]),
            w.code("purpose", d["purpose"]),
            _sent(d, w),
            w.t(f"delivery.{d['outcome']}"),
        ]
        for d in report["deliveries"]
    ]
    heads = ["col.when", "col.recipient", "col.message", "col.legal_basis", "col.purpose"]
    heads += ["col.fields", "col.outcome"]
    return f"<h2>{w.t('section.deliveries')}</h2>\n" + table(w, heads, rows)


def _sent(d: dict[str, Any], w: Words) -> str:
    """The data a transfer carried: the fields of a referral, or what of a status change."""
    items = [w.code("field", f.split(".", 1)[-1]) for f in d["fields"]]
    change = d.get("status_change")
    if change:
        items.append(f"{w.t('delivery.status')}: {w.code('status', change['status'])}")
        if change["reason"]:
            items.append(w.code("reason", change["reason"]))
        if change["business_status"]:
            items.append(w.code("business", change["business_status"]))
        if change["outcome"]:
            items.append(w.value(change["outcome"]))
        if change["note_included"]:
            items.append(w.t("delivery.note"))
    return ", ".join(items) or NOTHING


def _reads(report: dict[str, Any], w: Words) -> str:
    rows = [
        [
            w.when(z["at"]),
            w.partner(z["partner"]),
            w.t(f"read.{z['read']}"),
            str(len(z["referrals"])) if z["referrals"] else NOTHING,
        ]
        for z in report["partner_reads"]
    ]
    heads = ["col.when", "col.partner", "col.read", "col.referral"]
    return f"<h2>{w.t('section.reads')}</h2>\n" + table(w, heads, rows)


def _staff_views(report: dict[str, Any], w: Words) -> str:
    rows = [
        [w.when(v["at"]), w.t("staff"), _view(v["action"], w), w.code("purpose", v["purpose"])]
        for v in report["staff_views"]
    ]
    heads = ["col.when", "col.by", "col.event", "col.purpose"]
    return f"<h2>{w.t('section.staff_views')}</h2>\n" + table(w, heads, rows)


def _view(action: str, w: Words) -> str:
    known = w.t(f"view.{action}")
    return w.t("view.other") if known == f"view.{action}" else known


def _art15(report: dict[str, Any], w: Words) -> str:
    purposes = "".join(
        f"<li>{w.code('purpose', p['purpose'])}: "
        f"{'; '.join(w.basis(b) for b in p['legal_bases']) or NOTHING}</li>"
        for p in report["purposes"]
    )
    recipients = "".join(
        f"<li>{w.value(r['name'])} ({w.code('kind', r['kind'])})</li>" for r in report["recipients"]
    )
    rights = "".join(f"<li>{w.t(f'right.{r}')}</li>" for r in RIGHTS)
    none = f"<li>{w.t('none')}</li>"
    return (
        f"<h2>{w.t('section.art15')}</h2>\n"
        f"<h3>{w.t('art15.purposes')}</h3>\n<ul>{purposes or none}</ul>\n"
        f"<h3>{w.t('art15.recipients')}</h3>\n<p>{w.t('art15.recipients.text')}</p>\n"
        f"<ul>{recipients or none}</ul>\n"
        f"<h3>{w.t('art15.storage')}</h3>\n<p>{w.t('art15.storage.text')}</p>\n"
        f"<h3>{w.t('art15.source')}</h3>\n<p>{w.t('art15.source.text')}</p>\n"
        f"<h3>{w.t('art15.rights')}</h3>\n<p>{w.t('right.intro')}</p>\n<ul>{rights}</ul>\n"
        f"<p>{w.t('right.how')}</p>\n"
        f"<h3>{w.t('art15.complaint')}</h3>\n<p>{w.t('complaint.text')}</p>\n"
        f"<address>{w.t('complaint.authority')}<br>"
        + "<br>".join(w.value(line) for line in SUPERVISOR_ADDRESS)
        + "</address>\n"
        f"<h3>{w.t('art15.automated')}</h3>\n<p>{w.t('automated.text')}</p>\n"
    )


STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:62rem;margin:2rem auto;padding:0 1rem;"
    "color:#111;line-height:1.45}"
    "h2{border-bottom:2px solid #333;margin-top:2.2rem}h3{margin-top:1.6rem}"
    "table{border-collapse:collapse;width:100%;margin:.5rem 0 1rem}"
    "th,td{border:1px solid #777;padding:.3rem .5rem;text-align:start;vertical-align:top}"
    "th{background:#eee}dl{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem}"
    "dt{font-weight:bold}.erased{border:2px solid #333;padding:.6rem}"
    "address{font-style:normal;margin:.5rem 0}"
    "section.referral{border-top:1px solid #999;margin-top:1.5rem}"
    "@media print{body{margin:0;max-width:none}h2,h3,h4{break-after:avoid}"
    "tr,dl{break-inside:avoid}th{background:none}}"
)
