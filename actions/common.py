"""Small readers of the tracker shared by the actions."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Tracker


def intent_of(tracker: Tracker) -> str | None:
    return (tracker.latest_message.get("intent") or {}).get("name")


def confidence_of(tracker: Tracker) -> float | None:
    return (tracker.latest_message.get("intent") or {}).get("confidence")


def original_text(tracker: Tracker) -> str:
    """What the resident wrote, before normalisation (see TextNormaliser)."""
    message = tracker.latest_message
    return message.get("original_text") or message.get("text") or ""


def message_id(tracker: Tracker) -> str | None:
    """The id of the latest message: the WeChat MsgId, or Rasa's own id."""
    return tracker.latest_message.get("message_id")


def channel_of(tracker: Tracker) -> str:
    return tracker.get_latest_input_channel() or "unknown"


def wechat_metadata(tracker: Tracker) -> dict[str, Any]:
    metadata = tracker.latest_message.get("metadata") or {}
    wechat = metadata.get("wechat") if isinstance(metadata, dict) else None
    return wechat if isinstance(wechat, dict) else {}


def shared_location(tracker: Tracker) -> tuple[float, float, str | None] | None:
    """(latitude, longitude, label) of a location message, if this is one."""
    location = wechat_metadata(tracker).get("location")
    if not isinstance(location, dict):
        return None
    try:
        return float(location["latitude"]), float(location["longitude"]), location.get("label")
    except (KeyError, TypeError, ValueError):
        return None
