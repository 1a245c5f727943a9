"""Admins' previewed uploads (grid directory, service guide) waiting for "apply".

Kept in the shared state, so an apply reaching another web process finds the
upload its admin previewed; short-lived and bound to that admin.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from bot.coordination.base import SharedState
from bot.coordination.memory import InProcessState

PENDING_TTL = 30 * 60


@dataclass(frozen=True)
class PendingUpload:
    id: str
    worker_id: int
    filename: str
    text: str
    revision: int
    created: float


class PendingUploads:
    """Previewed uploads waiting for "apply", short-lived, one per admin.

    Kept in the shared state (bot.coordination), so an apply reaching another
    web process finds the upload its admin previewed.
    """

    def __init__(
        self,
        ttl: float = PENDING_TTL,
        clock: Callable[[], float] = time.time,
        state: SharedState | None = None,
        kind: str = "directory",
    ) -> None:
        self.ttl = ttl
        self.state = state if state is not None else InProcessState(clock=clock)
        # One prefix per kind of upload: an admin's pending guide never replaces
        # their pending directory upload.
        self.kind = kind

    def _key(self, upload_id: str) -> str:
        return f"{self.kind}-upload:{upload_id}"

    def add(self, worker_id: int, filename: str, text: str, revision: int) -> str:
        # One pending upload per admin: a new preview replaces the old one.
        latest_key = f"{self.kind}-upload-of:{worker_id}"
        previous = self.state.get(latest_key)
        if previous:
            self.state.delete(self._key(previous))
        upload_id = secrets.token_urlsafe(18)
        record = {
            "worker_id": worker_id,
            "filename": filename,
            "text": text,
            "revision": revision,
            "created": self.state.now(),
        }
        self.state.put(self._key(upload_id), json.dumps(record, ensure_ascii=False), self.ttl)
        self.state.put(latest_key, upload_id, self.ttl)
        return upload_id

    def get(self, upload_id: str, worker_id: int) -> PendingUpload | None:
        """The upload, if it exists, has not expired and is this admin's."""
        if not upload_id:
            return None
        raw = self.state.get(self._key(upload_id))
        if raw is None:
            return None
        record = json.loads(raw)
        if record.get("worker_id") != worker_id:
            return None
        return PendingUpload(
            upload_id,
            worker_id,
            record["filename"],
            record["text"],
            record["revision"],
            record["created"],
        )

    def discard(self, upload_id: str) -> None:
        if upload_id:
            self.state.delete(self._key(upload_id))
