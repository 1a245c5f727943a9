"""The review inbox: residents' logged messages -> reviewed training examples.

- bot.review.log      reads resident messages from Rasa's conversation log
- bot.review.ingest   copies them into review_messages, links their tickets
- bot.review.inbox    the inbox query (sort, filter, group) and the decisions
- bot.review.insights thin intents and confused intent pairs
- bot.review.export   reviewed examples -> data/nlu/reviewed.yml
"""

from __future__ import annotations

from bot.review.export import ExportResult, export_reviewed
from bot.review.inbox import InboxQuery, decide, load_inbox, undo
from bot.review.ingest import IngestResult, ingest
from bot.review.insights import load_insights
from bot.review.log import open_log

__all__ = [
    "ExportResult",
    "InboxQuery",
    "IngestResult",
    "decide",
    "export_reviewed",
    "ingest",
    "load_inbox",
    "load_insights",
    "open_log",
    "undo",
]
