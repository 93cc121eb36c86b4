"""Every table of the hub, imported in one place for migrations and tests."""

from __future__ import annotations

from hub.audit import models as audit_models
from hub.auth import models as auth_models
from hub.consent import models as consent_models
from hub.crypto import models as crypto_models
from hub.db import Base
from hub.deadlines import models as deadline_models
from hub.deliveries import models as delivery_models
from hub.events import models as event_models
from hub.inbox import models as inbox_models
from hub.outbox import models as outbox_models
from hub.partners import models as partner_models
from hub.people import models as people_models
from hub.portal import models as portal_models
from hub.referrals import models as referral_models
from hub.routing import models as routing_models
from hub.timeline import models as timeline_models
from hub.web import models as web_models

__all__ = [
    "audit_models",
    "auth_models",
    "consent_models",
    "crypto_models",
    "deadline_models",
    "delivery_models",
    "event_models",
    "inbox_models",
    "metadata",
    "outbox_models",
    "partner_models",
    "people_models",
    "portal_models",
    "referral_models",
    "routing_models",
    "timeline_models",
    "web_models",
]

metadata = Base.metadata
