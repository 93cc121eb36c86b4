"""Withdrawing a consent: new flows stop at the router, and what rests on the consent but
has not reached its partner yet is taken back.

At withdrawal, unacknowledged items of the person in the pull inboxes of the partners the
consent covers are taken out (and held for a release after a new consent). Pushes not yet
made are held by the delivery consumer when it comes to them, reads answer 403
``consent-withdrawn``; both check at that moment, so a withdrawal recorded elsewhere (the
CLI) is enforced as well.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from hub.consent import service
from hub.consent.models import Consent
from hub.inbox.consent import withdraw_for_person
from hub.policy.model import Policy


def withdraw(session: Session, *, consent_id: str, by: str, policy: Policy) -> Consent:
    """Withdraw a consent (as a partner) and take back what it no longer allows."""
    consent = service.withdraw(session, consent_id=consent_id, by=by)
    withdraw_for_person(
        session, policy=policy, person_id=consent.person_id, partners=list(consent.partners)
    )
    return consent
