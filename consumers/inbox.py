"""Pull delivery: what the router routed to a partner lands in that partner's inbox."""

from __future__ import annotations

from consumers.runner import Context, Event, PermanentError
from hub.inbox.service import put


def handle(event: Event, ctx: Context) -> None:
    """Put one routed event into its recipient's inbox."""
    recipient = event.attrs.extensions.get("recipient")
    if not recipient or ctx.settings.deliveries_topic(recipient) != event.topic:
        raise PermanentError(f"routed event on {event.topic} names recipient {recipient!r}")
    put(
        ctx.session,
        partner_id=recipient,
        event_id=event.attrs.id,
        event_type=event.attrs.type,
        referral_id=event.attrs.subject,
        data=event.data,
    )
