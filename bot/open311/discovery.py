"""GET /open311/discovery.json and .xml: where our GeoReport v2 endpoint is,
which specification it follows and in which formats."""

from __future__ import annotations

from typing import Any

from bot.open311.answers import FORMATS
from bot.settings import Settings

SPECIFICATION = "http://wiki.open311.org/GeoReport_v2"
PATH = "/open311/v2"
# When the API last changed (bump it with every change clients can see):
# XML beside JSON, discovery and mySociety's request updates.
CHANGESET = "2026-12-06T00:00:00Z"


def discovery(settings: Settings) -> dict[str, Any]:
    """The discovery document. The endpoint is `test` in development mode (no
    real WeChat secret), `production` otherwise."""
    base = settings.public_web_url
    return {
        "changeset": CHANGESET,
        "contact": settings.open311_contact or f"本平台管理员（{base}/admin）",
        "key_service": f"API密钥由本平台管理员签发（{base}/admin/keys）",
        "endpoints": [
            {
                "specification": SPECIFICATION,
                "url": base + PATH,
                "changeset": CHANGESET,
                "type": "production" if settings.wechat_app_secret else "test",
                "formats": [FORMATS["xml"], FORMATS["json"]],
            }
        ],
    }
