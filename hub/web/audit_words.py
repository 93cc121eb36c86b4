"""The audit trail in sentences: who did what, in German or English, with partners' names.

A data protection officer reads "UDE hat eine Überweisung gelesen", not an ``api.call`` row
with JSON; the record's raw details stay one click away on the page.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from hub.web.i18n import add_words, translate

#: Actions the page's filter offers by name (each has a sentence below).
ACTIONS = (
    "api.call",
    "api.read",
    "api.denied",
    "staff.login",
    "staff.login_refused",
    "staff.logout",
    "staff.person_search",
    "staff.search_hit_viewed",
    "staff.timeline_viewed",
    "staff.referral_viewed",
    "staff.referral_created",
    "staff.referral_cancelled",
    "staff.note_added",
    "staff.dashboard_viewed",
    "staff.dashboard_exported",
    "staff.deadletter_replayed",
    "staff.partner_registered",
    "staff.partner_credentials_rotated",
    "staff.partner_client_revoked",
    "staff.partner_mode_changed",
    "staff.account_created",
    "staff.account_disabled",
    "staff.account_enabled",
    "staff.account_password_reset",
    "staff.audit_viewed",
    "staff.audit_verified",
    "consent.granted",
    "consent.withdrawn",
    "person.exported",
    "person.erased",
    "referral.shredded",
    "referral.closed_idle",
    "operator.deadletter_replayed",
    "policy.loaded",
    "security.enumeration_suspected",
    "client.invite_issued",
    "client.invite_revoked",
    "client.login",
    "client.login_refused",
    "client.citizen_linked",
    "client.case_viewed",
    "client.access_viewed",
    "client.proof_viewed",
    "client.logout",
)

#: What a partner's API call did, by method and route (the first match wins).
_CALLS = (
    ("POST", re.compile(r"/status$"), "status"),
    ("POST", re.compile(r"/ack$"), "ack"),
    ("POST", re.compile(r"/referrals$"), "request"),
    ("GET", re.compile(r"/referrals/\{"), "read_referral"),
    ("GET", re.compile(r"/referrals$"), "list_referrals"),
    ("GET", re.compile(r"/inbox"), "inbox"),
    ("GET", re.compile(r"/timeline$"), "timeline"),
    ("POST", re.compile(r"/consents?"), "consent"),
)

_SENTENCES: dict[str, tuple[str, str]] = {
    "api.call.status": ("{actor} hat einen neuen Stand gemeldet.", "{actor} reported a status."),
    "api.call.ack": ("{actor} hat eine Nachricht quittiert.", "{actor} acknowledged a message."),
    "api.call.request": (
        "{actor} hat eine Überweisung angefragt.",
        "{actor} requested a referral.",
    ),
    "api.call.read_referral": ("{actor} hat eine Überweisung gelesen.", "{actor} read a referral."),
    "api.call.list_referrals": (
        "{actor} hat seine Überweisungen aufgelistet.",
        "{actor} listed its referrals.",
    ),
    "api.call.inbox": ("{actor} hat seinen Posteingang abgerufen.", "{actor} fetched its inbox."),
    "api.call.timeline": (
        "{actor} hat den Verlauf einer Person gelesen.",
        "{actor} read a person's timeline.",
    ),
    "api.call.consent": ("{actor} hat eine Einwilligung gemeldet.", "{actor} reported a consent."),
    "api.call": ("{actor} hat die Schnittstelle aufgerufen.", "{actor} called the API."),
    "api.read": (
        "{actor} hat Daten der Person erhalten ({n} Überweisungen).",
        "{actor} received the person's data ({n} referrals).",
    ),
    "api.denied": ("{actor} wurde ein Zugriff verweigert.", "{actor} was refused access."),
    "staff.login": ("{actor} hat sich angemeldet.", "{actor} logged in."),
    "staff.login_refused": ("Eine Anmeldung wurde abgelehnt.", "A login was refused."),
    "staff.logout": ("{actor} hat sich abgemeldet.", "{actor} logged out."),
    "staff.person_search": ("{actor} hat nach einer Person gesucht.", "{actor} searched a person."),
    "staff.search_hit_viewed": (
        "{actor} hat einen Suchtreffer geöffnet.",
        "{actor} opened a search result.",
    ),
    "staff.timeline_viewed": (
        "{actor} hat den Verlauf der Person angesehen.",
        "{actor} viewed the person's timeline.",
    ),
    "staff.referral_viewed": (
        "{actor} hat eine Überweisung der Person angesehen.",
        "{actor} viewed a referral of the person.",
    ),
    "staff.referral_created": (
        "{actor} hat für die Person eine Überweisung angelegt.",
        "{actor} made a referral for the person.",
    ),
    "staff.referral_cancelled": (
        "{actor} hat eine Überweisung zurückgezogen.",
        "{actor} cancelled a referral.",
    ),
    "staff.note_added": (
        "{actor} hat eine Notiz zu einer Überweisung geschrieben.",
        "{actor} added a note to a referral.",
    ),
    "staff.dashboard_viewed": (
        "{actor} hat die Rückstände angesehen.",
        "{actor} viewed the backlog.",
    ),
    "staff.dashboard_exported": (
        "{actor} hat die Rückstände als CSV heruntergeladen.",
        "{actor} downloaded the backlog as CSV.",
    ),
    "staff.deadletter_replayed": (
        "{actor} hat eine unzustellbare Nachricht an {recipient} erneut gesendet.",
        "{actor} replayed a dead letter to {recipient}.",
    ),
    "staff.partner_registered": (
        "{actor} hat den Partner {partner} registriert.",
        "{actor} registered the partner {partner}.",
    ),
    "staff.partner_credentials_rotated": (
        "{actor} hat {partner} neue Zugangsdaten ausgestellt.",
        "{actor} issued new credentials to {partner}.",
    ),
    "staff.partner_client_revoked": (
        "{actor} hat einen Zugang von {partner} widerrufen.",
        "{actor} revoked a client of {partner}.",
    ),
    "staff.partner_mode_changed": (
        "{actor} hat den Zustellweg von {partner} geändert.",
        "{actor} changed the delivery mode of {partner}.",
    ),
    "staff.account_created": ("{actor} hat ein Konto angelegt.", "{actor} created an account."),
    "staff.account_disabled": ("{actor} hat ein Konto gesperrt.", "{actor} disabled an account."),
    "staff.account_enabled": ("{actor} hat ein Konto entsperrt.", "{actor} enabled an account."),
    "staff.account_password_reset": (
        "{actor} hat ein Passwort zurückgesetzt.",
        "{actor} reset a password.",
    ),
    "staff.audit_viewed": (
        "{actor} hat das Protokoll angesehen.",
        "{actor} viewed the audit trail.",
    ),
    "staff.audit_verified": (
        "{actor} hat das Protokoll geprüft.",
        "{actor} verified the audit log.",
    ),
    "consent.granted": ("Eine Einwilligung wurde erteilt.", "Consent was granted."),
    "consent.withdrawn": ("Eine Einwilligung wurde widerrufen.", "Consent was withdrawn."),
    "person.exported": (
        "{actor} hat die Auskunft nach Art. 15 DSGVO erstellt.",
        "{actor} produced the Art. 15 GDPR report.",
    ),
    "person.erased": ("Die Daten der Person wurden gelöscht.", "The person's data was erased."),
    "referral.shredded": (
        "Die Daten einer Überweisung wurden nach Fristablauf gelöscht.",
        "A referral's data was erased after its retention period.",
    ),
    "referral.closed_idle": (
        "Eine ruhende Überweisung wurde geschlossen.",
        "An idle referral was closed.",
    ),
    "operator.deadletter_replayed": (
        "{actor} hat eine unzustellbare Nachricht erneut gesendet.",
        "{actor} replayed a dead letter.",
    ),
    "policy.loaded": ("Die Weiterleitungsregeln wurden geladen.", "The routing policy was loaded."),
    "security.enumeration_suspected": (
        "Verdacht auf Ausforschung: {actor} hat auffällig viele Kennungen abgefragt.",
        "Suspected enumeration: {actor} asked for unusually many ids.",
    ),
    "client.invite_issued": (
        "{actor} hat einen Zugangscode für Mein Verfahren erstellt.",
        "{actor} issued an access code for Mein Verfahren.",
    ),
    "client.invite_revoked": (
        "{actor} hat einen Zugangscode für Mein Verfahren widerrufen.",
        "{actor} revoked an access code for Mein Verfahren.",
    ),
    "client.login": (
        "Die Person hat sich bei Mein Verfahren angemeldet.",
        "The person signed in to Mein Verfahren.",
    ),
    "client.login_refused": (
        "Eine Anmeldung bei Mein Verfahren wurde abgelehnt.",
        "A sign-in to Mein Verfahren was refused.",
    ),
    "client.citizen_linked": (
        "Die Person hat ihr Bürgerkonto mit Mein Verfahren verbunden.",
        "The person linked their citizen account to Mein Verfahren.",
    ),
    "client.case_viewed": (
        "Die Person hat ihr Verfahren angesehen.",
        "The person viewed their case.",
    ),
    "client.access_viewed": (
        "Die Person hat angesehen, wer ihre Daten verwendet hat.",
        "The person viewed who used their data.",
    ),
    "client.proof_viewed": (
        "Die Person hat einen Nachweis aus dem Protokoll abgerufen.",
        "The person fetched a proof from the audit log.",
    ),
    "client.logout": (
        "Die Person hat sich bei Mein Verfahren abgemeldet.",
        "The person signed out of Mein Verfahren.",
    ),
    "other": ("{actor}: Aktion {action}", "{actor}: action {action}"),
    "actor.system": ("Der Hub", "The hub"),
}

add_words({f"audit.say.{key}": words for key, words in _SENTENCES.items()})


def sentence(
    *,
    action: str,
    actor_type: str,
    actor: str,
    details: dict[str, Any],
    lang: str,
    partner_name: Callable[[str | None], str],
) -> str:
    """What the record says happened, as one sentence in ``lang`` (plain text)."""
    who = _who(actor_type, actor, lang, partner_name)
    key = _call_key(details) if action == "api.call" else action
    values = {
        "actor": who,
        "action": action,
        "n": len(details.get("referrals") or []),
        "recipient": partner_name(details.get("recipient")) or "?",
        "partner": partner_name(details.get("partner_id") or details.get("partner")) or "?",
    }
    if key not in _SENTENCES:
        key = "other"
    return translate(f"audit.say.{key}", lang, **values)


def _who(actor_type: str, actor: str, lang: str, partner_name: Callable[[str | None], str]) -> str:
    if actor_type == "partner":
        return partner_name(actor)
    if actor_type == "system" and not actor.startswith("cli:"):
        return translate("audit.say.actor.system", lang)
    return actor


def _call_key(details: dict[str, Any]) -> str:
    method, route = str(details.get("method", "")), str(details.get("route", ""))
    for wanted, pattern, name in _CALLS:
        if method == wanted and pattern.search(route):
            return f"api.call.{name}"
    return "api.call"


def action_name(action: str, lang: str) -> str:
    """The action as a short name for the filter: its sentence without a subject."""
    text = translate(f"audit.say.{action}", lang, actor="…", recipient="…", partner="…", n="…")
    return text.rstrip(".")
