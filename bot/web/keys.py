"""Typed keys of what the web app keeps on the Application object."""

from __future__ import annotations

import aiohttp
from aiohttp import web
from sqlalchemy.engine import Engine

from bot.conversation_log import ConversationLog
from bot.coordination import SharedState
from bot.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
ENGINE = web.AppKey("engine", Engine)
HTTP = web.AppKey("http", aiohttp.ClientSession)
CONVERSATION_LOG = web.AppKey("conversation_log", ConversationLog)
# State shared by every web process (bot.coordination): in-process, or Redis.
SHARED_STATE = web.AppKey("shared_state", SharedState)
