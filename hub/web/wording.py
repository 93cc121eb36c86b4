"""Labels, partner names and dates as a caseworker reads them, in the page's language.

Every staff page shows the catalogue's labels (schemas/labels.py) instead of its codes, the
partners' names instead of their ids, and moments to the minute in Duisburg's time zone
written the reader's way (``03.12.2026, 14:05`` or ``3 Dec 2026, 14:05``).
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from hub.dates import BERLIN as BERLIN
from hub.dates import day as day
from hub.dates import moment as moment
from hub.partners.models import Partner
from schemas.labels import label as catalogue_label


def label(lang: str, kind: str, code: str | None) -> str:
    """The catalogue's label of ``code`` (``kind`` is ``type``, ``status``, ``business`` …)."""
    if not code:
        return ""
    return catalogue_label(lang, f"{kind}.{code}", code)


def partner_names(session: Session) -> dict[str, str]:
    """Partner id -> display name, every partner."""
    return {
        partner_id: name for partner_id, name in session.execute(select(Partner.id, Partner.name))
    }


class PartnerNames:
    """Partner id -> display name, read once the first time a page asks (per request)."""

    def __init__(self, session_factory: sessionmaker[Session] | Callable[[], Session]) -> None:
        self._session_factory = session_factory
        self._names: dict[str, str] | None = None

    def __call__(self, partner_id: str | None) -> str:
        if not partner_id:
            return ""
        if self._names is None:
            with self._session_factory() as session:
                self._names = partner_names(session)
        return self._names.get(partner_id, partner_id)
