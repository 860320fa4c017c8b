"""The development-only pages and the local Twilio-compatible endpoint, registered together.

``create_app`` includes this router only when ``settings.dev_endpoints`` is on.
"""

from __future__ import annotations

from fastapi import APIRouter

from api.routes import dev_mailbox, dev_twilio

router = APIRouter(include_in_schema=False)
router.include_router(dev_twilio.router)
router.include_router(dev_mailbox.router)
