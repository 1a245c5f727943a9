"""The review inbox: residents' logged messages -> reviewed training examples.

- bot.review.ingest   copies residents' messages of the conversation log
                      (bot.conversation_log) into review_messages, links their tickets
- bot.review.inbox    the inbox query (sort, filter, group) and the decisions
- bot.review.insights thin intents and confused intent pairs
- bot.review.export   reviewed examples -> data/nlu/reviewed.yml
"""

from __future__ import annotations

from bot.review.export import ExportResult, export_reviewed
from bot.review.inbox import InboxQuery, decide, load_inbox, undo
from bot.review.ingest import IngestResult, LogCopier, ingest
from bot.review.insights import load_insights

__all__ = [
    "ExportResult",
    "InboxQuery",
    "IngestResult",
    "LogCopier",
    "decide",
    "export_reviewed",
    "ingest",
    "load_inbox",
    "load_insights",
    "undo",
]
