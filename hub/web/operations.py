"""What the operations pages share: their roles, limits and words.

The pages are ``deliveries`` (deliveries and dead letters), ``partner_admin`` (partners and
their clients) and ``audit_trail``; each handler parses, calls the same services the CLI
uses, audits what staff did, and renders.
"""

from __future__ import annotations

from hub.web.i18n import add_words

DELIVERY_ROLES = ("team_lead", "admin")
ADMIN_ROLES = ("admin",)
AUDIT_ROLES = ("dpo", "admin")
#: Seconds to wait for a Kafka broker to answer before saying it is unreachable.
KAFKA_PROBE_SECONDS = 1.0
#: The newest dead letters shown; the topic keeps every letter ever written.
DEADLETTERS_SHOWN = 200
AUDIT_PAGE = 50
PROBLEMS_SHOWN = 100
#: Connector fields an admin may set in the UI (connectors.config.ConnectorConfig).
CONNECTOR_FIELDS = (
    "endpoint_url",
    "token_endpoint",
    "client_id",
    "credential_ref",
    "signing_secret_ref",
)
SECRET_REFS = ("credential_ref", "signing_secret_ref")
#: Confirmations a redirect may name; anything else in ``?message=`` is ignored.
MESSAGES = frozenset({"ops.replayed", "ops.revoked", "ops.mode_changed"})

add_words(
    {
        "ops.partner": ("Partner", "Partner"),
        "ops.mode": ("Zustellweg", "Delivery mode"),
        "ops.mode.push": ("Push (der Hub sendet)", "Push (the hub sends)"),
        "ops.mode.pull": ("Pull (der Partner ruft ab)", "Pull (the partner fetches)"),
        "ops.state": ("Zustand", "State"),
        "ops.health.level.ok": ("in Ordnung", "healthy"),
        "ops.health.level.warning": ("Warnung", "warning"),
        "ops.health.level.bad": ("gestört", "not delivering"),
        "ops.health.level.inactive": ("inaktiv", "inactive"),
        "ops.health.ok": ("Nichts wartet auf Zustellung.", "Nothing is waiting to be delivered."),
        "ops.health.moving": (
            "{lag} Ereignisse warten; Zustellungen kommen an.",
            "{lag} events waiting; deliveries are getting through.",
        ),
        "ops.health.inactive": (
            "Der Partner ist deaktiviert und erhält nichts.",
            "The partner is deactivated and receives nothing.",
        ),
        "ops.health.paused": (
            "Zustellung pausiert nach {failures} Fehlversuchen in Folge.",
            "Delivery paused after {failures} failed attempts in a row.",
        ),
        "ops.health.never": (
            "{lag} Ereignisse warten, und noch keine Zustellung ist je gelungen.",
            "{lag} events waiting, and no delivery has ever succeeded.",
        ),
        "ops.health.stale": (
            "{lag} Ereignisse warten; letzte erfolgreiche Zustellung vor {minutes} Minuten.",
            "{lag} events waiting; last successful delivery {minutes} minutes ago.",
        ),
        "ops.health.failing": (
            "{failures} Fehlversuche in Folge; noch nicht pausiert.",
            "{failures} failed attempts in a row; not paused yet.",
        ),
        "ops.paused": (
            "pausiert seit {since}, {failures} Fehlversuche in Folge",
            "paused since {since}, {failures} failed attempts in a row",
        ),
        "ops.inactive": ("inaktiv", "inactive"),
        "ops.lag": ("Rückstand", "Lag"),
        "ops.lag.hint": (
            "Rückstand: an den Partner weitergeleitete Ereignisse, die noch nicht zugestellt"
            " (Push) oder noch nicht quittiert (Pull) sind, einschließlich unzustellbarer.",
            "Lag: events routed to the partner that are not yet delivered (push) or not yet"
            " acknowledged (pull), dead letters included.",
        ),
        "ops.delivered": ("zugestellt", "delivered"),
        "ops.dead_lettered": ("unzustellbar", "dead-lettered"),
        "ops.held": ("zurückgehalten", "held back"),
        "ops.last_success": ("Letzter Erfolg", "Last success"),
        "ops.last_error": ("Letzter Fehler", "Last error"),
        "ops.never": ("nie", "never"),
        "ops.deadletters": ("Unzustellbare Nachrichten", "Dead letters"),
        "ops.kafka_down": (
            "Kafka nicht erreichbar: Die unzustellbaren Nachrichten können gerade nicht"
            " gelesen werden. Bitte laden Sie die Seite später neu.",
            "Kafka unreachable: the dead letters cannot be read right now."
            " Please reload the page later.",
        ),
        "ops.dl.none": ("Keine unzustellbaren Nachrichten.", "No dead letters."),
        "ops.dl.shown": (
            "Die neuesten {shown} von {total} werden angezeigt.",
            "The newest {shown} of {total} are shown.",
        ),
        "ops.dl.hint": (
            "Erneut gesendet wird unter derselben Ereigniskennung: Was inzwischen zugestellt"
            " wurde, wird übersprungen, nichts kommt doppelt an.",
            "A replay keeps the event id: what was delivered meanwhile is skipped,"
            " nothing arrives twice.",
        ),
        "ops.dl.id": ("Kennung", "Id"),
        "ops.dl.recipient": ("Empfänger", "Recipient"),
        "ops.dl.event": ("Ereignis", "Event"),
        "ops.dl.reason": ("Grund", "Reason"),
        "ops.dl.consumer": ("Verarbeiter", "Consumer"),
        "ops.dl.status": ("Stand", "Status"),
        "ops.dl.open": ("offen", "open"),
        "ops.dl.replays": ("{n}-mal erneut gesendet", "replayed {n} times"),
        "ops.dl.applied": ("inzwischen verarbeitet", "processed since"),
        "ops.dpop": (
            "Nur DPoP-gebundene Tokens (RFC 9449) ausgeben",
            "Issue DPoP-bound tokens only (RFC 9449)",
        ),
        "ops.replay": ("Erneut senden", "Replay"),
        "ops.replayed": (
            "Die Nachricht wird erneut gesendet. Wurde sie inzwischen zugestellt, wird sie"
            " übersprungen.",
            "The message is being replayed. If it was delivered meanwhile, it is skipped.",
        ),
        "ops.id": ("Kennung", "Id"),
        "ops.id.hint": (
            "Kleinbuchstaben, Ziffern und „-“, beginnt mit einem Buchstaben",
            "lower-case letters, digits and '-', starting with a letter",
        ),
        "ops.name": ("Name", "Name"),
        "ops.kind": ("Art", "Kind"),
        "ops.created": ("angelegt", "created"),
        "ops.clients": ("Aktive Zugänge (OAuth-Clients)", "Active OAuth clients"),
        "ops.no_clients": ("Kein aktiver Zugang.", "No active client."),
        "ops.scopes": ("Berechtigungen", "Scopes"),
        "ops.auth": ("Anmeldeverfahren", "Authentication method"),
        "ops.jwks": (
            "Öffentliche Schlüssel des Partners (JWKS), nur für private_key_jwt",
            "The partner's public keys (JWKS), for private_key_jwt only",
        ),
        "ops.register": ("Partner registrieren", "Register partner"),
        "ops.registered": ("Partner registriert.", "Partner registered."),
        "ops.manage": ("Verwalten", "Manage"),
        "ops.rotate": ("Neuen Zugang ausstellen (Rotation)", "Issue new credentials (rotation)"),
        "ops.rotate.hint": (
            "Der neue Zugang erhält dieselben Berechtigungen. Der bisherige bleibt gültig,"
            " bis Sie ihn widerrufen.",
            "The new client gets the same scopes. The old one stays valid until you revoke it.",
        ),
        "ops.rotated": ("Neuer Zugang ausgestellt.", "New credentials issued."),
        "ops.revoke": ("Widerrufen", "Revoke"),
        "ops.revoked": (
            "Zugang widerrufen: Er erhält keine neuen Zugriffstoken mehr; bereits ausgestellte"
            " laufen nach ihrer Gültigkeitsdauer ab.",
            "Client revoked: it gets no new access tokens; tokens already issued expire"
            " after their lifetime.",
        ),
        "ops.mode.change": ("Zustellweg ändern", "Change delivery mode"),
        "ops.mode.hint": (
            "Push braucht die Webhook-Adresse des Partners. Leere Felder behalten ihren"
            " bisherigen Wert. Geheimnisse nur als Verweis (env:NAME oder file:/pfad).",
            "Push needs the partner's webhook URL. Empty fields keep their value."
            " Secrets only as a reference (env:NAME or file:/path).",
        ),
        "ops.mode_changed": (
            "Zustellweg geändert. Wirksam für die Push-Zustellung nach einem Neustart der"
            " Zustell-Consumer (hub up bzw. hub consume delivery).",
            "Delivery mode changed. Push delivery follows after a restart of the delivery"
            " consumers (hub up or hub consume delivery).",
        ),
        "ops.endpoint_url": ("Webhook-Adresse des Partners", "Partner's webhook URL"),
        "ops.token_endpoint": ("Token-Endpunkt des Partners", "Partner's token endpoint"),
        "ops.client_id.partner": (
            "Client-Kennung des Hubs beim Partner",
            "The hub's client id at the partner",
        ),
        "ops.credential_ref": ("Verweis auf das Client-Geheimnis", "Reference to the secret"),
        "ops.signing_secret_ref": (
            "Verweis auf das Signaturgeheimnis",
            "Reference to the signing secret",
        ),
        "ops.ref_hidden": ("gesetzt, Wert verborgen", "set, value hidden"),
        "ops.save": ("Speichern", "Save"),
        "ops.credentials": ("Neue Zugangsdaten", "New credentials"),
        "ops.secret_once": (
            "Das Client-Geheimnis wird nur jetzt angezeigt und ist nirgends gespeichert."
            " Übermitteln Sie es dem Partner auf sicherem Weg; nach Verlassen dieser Seite"
            " kann es niemand mehr anzeigen.",
            "The client secret is shown only now and is stored nowhere. Pass it to the"
            " partner securely; once you leave this page nobody can show it again.",
        ),
        "ops.client_id": ("Client-Kennung", "Client id"),
        "ops.client_secret": ("Client-Geheimnis", "Client secret"),
        "ops.audit.person": ("Person (Kennung)", "Person (id)"),
        "ops.audit.prefix": ("Aktion beginnt mit", "Action starts with"),
        "ops.audit.seq": ("Nr.", "No."),
        "ops.audit.at": ("Zeitpunkt", "Time"),
        "ops.audit.actor": ("Handelnd", "Actor"),
        "ops.audit.actor.filter": ("Handelnd (Kennung)", "Actor (id)"),
        "ops.audit.actor.hint": (
            "Kennung eines Partners oder E-Mail-Adresse einer Mitarbeiterin",
            "A partner's id or a staff member's e-mail address",
        ),
        "ops.audit.by_actor": ("Nur Einträge dieses Handelnden", "Only this actor's records"),
        "ops.audit.what": ("Was geschah", "What happened"),
        "ops.audit.details.show": ("Rohdaten", "Raw data"),
        "ops.audit.action": ("Aktion", "Action"),
        "ops.audit.details": ("Einzelheiten", "Details"),
        "ops.audit.older": ("Ältere Einträge", "Older records"),
        "ops.audit.newest": ("Zu den neuesten", "To the newest"),
        "ops.audit.recorded": (
            "Auch das Ansehen des Protokolls wird protokolliert.",
            "Viewing the audit trail is recorded too.",
        ),
        "ops.verify": ("Protokoll prüfen", "Verify the log"),
        "ops.verify.ok": (
            "Protokoll unverändert: {checked} Einträge gegen {checkpoints} signierte "
            "Prüfpunkte geprüft.",
            "Audit log intact: {checked} records checked against {checkpoints} signed checkpoints.",
        ),
        "ops.verify.bad": (
            "Protokoll NICHT unverändert: {problems} Probleme in {checked} Einträgen.",
            "Audit trail NOT intact: {problems} problems in {checked} records.",
        ),
    }
)


def known(message: str) -> str | None:
    return message if message in MESSAGES else None
