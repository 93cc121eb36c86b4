"""Pull delivery: what the router routed to a partner lands in that partner's inbox.

The router's consent check is made again here: a copy routed before its consent was
withdrawn is held, not filed (hub/inbox/consent.py).
"""

from __future__ import annotations

from consumers.runner import Context, Event, PermanentError
from hub.inbox.consent import receive
from hub.inbox.service import consumer_name


def handle(event: Event, ctx: Context) -> None:
    """Put one routed event into its recipient's inbox (held if its consent is gone)."""
    recipient = event.attrs.extensions.get("recipient")
    if not recipient or ctx.settings.deliveries_topic(recipient) != event.topic:
        raise PermanentError(f"routed event on {event.topic} names recipient {recipient!r}")
    receive(ctx.session, policy=ctx.policy, attrs=event.attrs, recipient=recipient, data=event.data)


def mark_as(event: Event) -> str:
    """Each recipient's copy is applied on its own: a status change the hub makes (an erasure
    closing a referral) goes to both parties under one event id."""
    recipient = event.attrs.extensions.get("recipient")
    return consumer_name(str(recipient)) if recipient else "inbox"
