"""The staff UI's words, German first, English on request (cookie ``hub_lang``)."""

from __future__ import annotations

LANGUAGES = ("de", "en")
DEFAULT_LANGUAGE = "de"

# key: (German, English)
_WORDS: dict[str, tuple[str, str]] = {
    "app.title": ("International Talent Center Duisburg", "International Talent Center Duisburg"),
    "nav.search": ("Klientensuche", "Client search"),
    "nav.dashboard": ("Rückstände", "Backlog"),
    "nav.deliveries": ("Zustellungen", "Deliveries"),
    "nav.partners": ("Partner", "Partners"),
    "nav.audit": ("Protokoll", "Audit trail"),
    "nav.logout": ("Abmelden", "Log out"),
    "nav.skip": ("Zum Inhalt springen", "Skip to content"),
    "lang.switch": ("English", "Deutsch"),
    "login.title": ("Anmeldung", "Log in"),
    "login.email": ("E-Mail-Adresse", "E-mail address"),
    "login.password": ("Passwort", "Password"),
    "login.submit": ("Anmelden", "Log in"),
    "login.refused": (
        "Anmeldung nicht möglich: E-Mail-Adresse oder Passwort falsch,"
        " oder das Konto ist vorübergehend gesperrt.",
        "Login refused: wrong e-mail address or password, or the account is locked for a while.",
    ),
    "login.throttled": (
        "Zu viele Anmeldeversuche. Bitte warten Sie eine Minute.",
        "Too many login attempts. Please wait a minute.",
    ),
    "forbidden.title": ("Keine Berechtigung", "Not allowed"),
    "forbidden.text": (
        "Ihre Rolle „{role}“ darf diese Seite nicht öffnen.",
        "Your role “{role}” may not open this page.",
    ),
    "notfound.title": ("Nicht gefunden", "Not found"),
    "csrf.title": ("Formular abgelaufen", "Form expired"),
    "csrf.text": (
        "Das Formular war nicht mehr gültig."
        " Bitte laden Sie die Seite neu und versuchen Sie es noch einmal.",
        "The form was no longer valid. Please reload the page and try again.",
    ),
    "search.title": ("Klientin oder Klienten finden", "Find a client"),
    "search.query": ("Hub-Kennung oder Partner-Aktenzeichen", "Hub id or partner reference"),
    "search.hint": (
        "z. B. p_… oder eine Matrikelnummer, Kundennummer oder ein Aktenzeichen",
        "e.g. p_… or a Matrikelnummer, customer number or file number",
    ),
    "search.submit": ("Suchen", "Search"),
    "search.none": (
        "Keine Person gefunden, die Sie sehen dürfen.",
        "No person found that you may see.",
    ),
    "search.results": ("Treffer", "Results"),
    "search.matched": ("gefunden über", "matched by"),
    "timeline.title": ("Verlauf", "Timeline"),
    "timeline.person": ("Person", "Person"),
    "timeline.order": ("Reihenfolge", "Order"),
    "timeline.newest": ("Neueste zuerst", "Newest first"),
    "timeline.oldest": ("Älteste zuerst", "Oldest first"),
    "timeline.partner": ("Partner", "Partner"),
    "timeline.type": ("Art", "Type"),
    "timeline.purpose": ("Zweck", "Purpose"),
    "timeline.all": ("alle", "all"),
    "timeline.filter": ("Filtern", "Filter"),
    "timeline.empty": ("Keine Einträge.", "No entries."),
    "timeline.truncated": (
        "Angezeigt werden die ersten {n} Einträge in dieser Reihenfolge.",
        "Showing the first {n} entries in this order.",
    ),
    "timeline.show_more": ("Weitere anzeigen", "Show more"),
    "timeline.narrow": (
        "Für die übrigen Einträge nach Partner, Art oder Zweck filtern.",
        "Filter by partner, type or purpose to see the others.",
    ),
    "timeline.occurred": ("geschehen", "occurred"),
    "timeline.recorded": ("erfasst", "recorded"),
    "timeline.basis": ("Rechtsgrundlage", "Legal basis"),
    "timeline.source": ("gemeldet von", "reported by"),
    "timeline.live": ("Aktualisiert sich automatisch.", "Updates automatically."),
    "timeline.referrals": ("Überweisungen", "Referrals"),
    "timeline.hidden": (
        "Einträge anderer Zweckbereiche sind ausgeblendet.",
        "Entries of other purpose domains are hidden.",
    ),
    "referral.title": ("Überweisung", "Referral"),
    "referral.type": ("Art", "Type"),
    "referral.requester": ("Von", "From"),
    "referral.performer": ("An", "To"),
    "referral.status": ("Stand", "Status"),
    "referral.lifecycle": ("Ablauf", "Lifecycle"),
    "referral.payload": ("Angaben des Partners", "Partner's details"),
    "referral.history": ("Verlauf des Stands", "Status history"),
    "referral.clocks": ("Fristen", "Deadlines"),
    "referral.clock.name": ("Frist", "Deadline"),
    "referral.clock.state": ("Zustand", "State"),
    "referral.clock.due": ("fällig am", "due on"),
    "referral.clock.left": ("verbleibend", "time left"),
    "referral.clock.suggestion": ("Vorschlag zur Bestätigung", "Suggestion to confirm"),
    "referral.clock.days": ("{n} Tage", "{n} days"),
    "referral.noclocks": ("Keine Fristen.", "No deadlines."),
    "referral.holds": ("Zurückgehaltene Zustellungen", "Held deliveries"),
    "referral.notes": ("Notizen", "Notes"),
    "referral.note.add": ("Notiz hinzufügen", "Add note"),
    "referral.note.text": ("Notiz", "Note"),
    "referral.cancel": ("Überweisung zurückziehen", "Cancel referral"),
    "referral.cancel.reason": ("Grund", "Reason"),
    "referral.new": ("Neue Überweisung", "New referral"),
    "referral.new.submit": ("Überweisen", "Refer"),
    "referral.new.choose": ("Art wählen", "Choose type"),
    "answer.yes": ("ja", "yes"),
    "answer.no": ("nein", "no"),
    "referral.created": ("Überweisung angelegt.", "Referral created."),
    "referral.not_yours": (
        "Nur Überweisungen des Talent Centers können hier geändert werden.",
        "Only the Talent Center's own referrals can be changed here.",
    ),
    "referral.at": ("am", "at"),
    "referral.by": ("durch", "by"),
    "error.title": ("Eingabe abgelehnt", "Input refused"),
    "dashboard.title": ("Rückstände und Fristen", "Backlog and deadlines"),
    "deliveries.title": ("Zustellungen an Partner", "Deliveries to partners"),
    "partners.title": ("Partnerverwaltung", "Partner administration"),
    "audit.title": ("Protokoll", "Audit trail"),
    "event.referral.requested": ("Überweisung angefragt", "Referral requested"),
    "event.referral.status-changed": ("Stand geändert", "Status changed"),
    "event.referral.delivered": ("Zugestellt", "Delivered"),
    "event.referral.delivery-failed": ("Zustellung gescheitert", "Delivery failed"),
    "event.referral.deadline-due": ("Frist", "Deadline"),
    "event.person.linked": ("Person verknüpft", "Person linked"),
    "event.consent.granted": ("Einwilligung erteilt", "Consent granted"),
    "event.consent.withdrawn": ("Einwilligung widerrufen", "Consent withdrawn"),
    "event.person.erased": ("Daten gelöscht", "Data erased"),
    "status.requested": ("angefragt", "requested"),
    "status.received": ("eingegangen", "received"),
    "status.accepted": ("angenommen", "accepted"),
    "status.in-progress": ("in Bearbeitung", "in progress"),
    "status.on-hold": ("ruht", "on hold"),
    "status.completed": ("abgeschlossen", "completed"),
    "status.failed": ("gescheitert", "failed"),
    "status.rejected": ("abgelehnt", "rejected"),
    "status.cancelled": ("zurückgezogen", "cancelled"),
    "status.entered-in-error": ("irrtümlich erfasst", "entered in error"),
    "clock.running": ("läuft", "running"),
    "clock.paused": ("angehalten", "paused"),
    "clock.stopped": ("beendet", "stopped"),
    "clock.expired": ("abgelaufen", "expired"),
    "clock.not-started": ("noch nicht begonnen", "not started"),
    "purpose.residence": ("Aufenthaltsrecht", "Residence law"),
    "purpose.counselling": ("Beratung", "Counselling"),
    "purpose.education": ("Bildung", "Education"),
    "purpose.employment": ("Beschäftigung", "Employment"),
    "purpose.recognition": ("Anerkennung", "Recognition"),
    "role.caseworker": ("Sachbearbeitung", "Caseworker"),
    "role.team_lead": ("Teamleitung", "Team lead"),
    "role.dpo": ("Datenschutzbeauftragte/r", "Data protection officer"),
    "role.admin": ("Administration", "Administrator"),
}


def translate(key: str, lang: str, **values: object) -> str:
    """The text for ``key`` in ``lang``; the key itself if it has none (so a gap shows)."""
    pair = _WORDS.get(key)
    if pair is None:
        return key.format(**values) if values else key
    text = pair[0] if lang == "de" else pair[1]
    return text.format(**values) if values else text


def add_words(words: dict[str, tuple[str, str]]) -> None:
    """Register more words (pages of other modules bring their own)."""
    clash = set(words) & set(_WORDS)
    if clash:
        raise ValueError(f"words defined twice: {sorted(clash)}")
    _WORDS.update(words)


def pick_language(cookie: str | None) -> str:
    """The language from the cookie, German when absent or unknown."""
    return cookie if cookie in LANGUAGES else DEFAULT_LANGUAGE
