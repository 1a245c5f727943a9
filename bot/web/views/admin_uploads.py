"""Admin console: upload, preview and apply of a file the admins keep.

The grid directory and the service guide are kept the same way: an upload is
only checked and previewed (every problem listed, nothing changed); "apply"
applies the very file previewed, unless what it replaces changed meanwhile.
A page gives what differs (how its file is checked and applied, its page, its
words); what each step answers when it fails is decided here, once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from aiohttp import web

from bot.coordination.pending_uploads import PendingUpload, PendingUploads

Checked = TypeVar("Checked")
Applied = TypeVar("Applied")

# A page of the console: (request, *, problems=, filename=, error=, message=, status=).
Page = Callable[..., Awaitable[web.Response]]

REFUSED_AT_APPLY = "文件未通过检查，没有修改。"


@dataclass(frozen=True)
class UploadWords:
    choose_file: str  # the form came without a file
    refused: str  # the file did not pass the checks: nothing changed
    expired: str  # the preview is gone (timed out, or applied already)
    stale: str  # what the file replaces changed after the preview


@dataclass(frozen=True)
class UploadFlow(Generic[Checked, Applied]):
    pending: web.AppKey[PendingUploads]
    route: str  # the page's route name: where cancel and apply lead back to
    page: Page
    words: UploadWords
    max_bytes: int
    default_filename: str
    refusal: type[Exception]  # the check's error; it carries `problems`
    stale: type[Exception]  # raised by apply when the preview is out of date

    async def check(
        self, request: web.Request, check: Callable[[bytes], Awaitable[Checked]]
    ) -> tuple[str, Checked] | web.Response:
        """The uploaded file's name and what `check` made of it, or the page to answer
        with (no file: 400; problems: 400 listing them)."""
        form = await request.post()
        upload = form.get("file")
        if not isinstance(upload, web.FileField):
            return await self.page(request, error=self.words.choose_file, status=400)
        filename = (upload.filename or self.default_filename)[:200]
        # One byte more than allowed, so the check can tell an oversize file.
        raw = upload.file.read(self.max_bytes + 1)
        try:
            return filename, await check(raw)
        except self.refusal as error:
            return await self.page(
                request,
                problems=_problems(error),
                filename=filename,
                error=self.words.refused,
                status=400,
            )

    def keep(self, request: web.Request, filename: str, text: str, revision: int) -> str:
        """Keep the previewed file for this admin's "apply"; its upload id."""
        return request.app[self.pending].add(request["worker"].id, filename, text, revision)

    async def apply(
        self, request: web.Request, apply: Callable[[PendingUpload], Awaitable[Applied]]
    ) -> Applied | web.Response:
        """Apply the upload the form names, or the answer to give instead.

        Cancel leads back to the page; an expired or other admin's upload, and a
        stale preview, are 409; the preview is forgotten once used."""
        form = await request.post()
        upload_id = str(form.get("upload", ""))[:64]
        pending = request.app[self.pending]
        if form.get("cancel"):
            pending.discard(upload_id)
            raise self.done(request, "cancelled")
        item = pending.get(upload_id, request["worker"].id)
        if item is None:
            return await self.page(request, error=self.words.expired, status=409)
        try:
            applied = await apply(item)
        except self.stale:
            pending.discard(upload_id)
            return await self.page(request, error=self.words.stale, status=409)
        except self.refusal as error:  # cannot happen: it was checked at upload
            pending.discard(upload_id)
            return await self.page(
                request, problems=_problems(error), error=REFUSED_AT_APPLY, status=400
            )
        # Anything else (the database down, say) keeps the preview for another try.
        pending.discard(upload_id)
        return applied

    def done(self, request: web.Request, what: str, **query: str) -> web.HTTPSeeOther:
        """Back to the page, which says what was done (`?done=`)."""
        target = request.app.router[self.route].url_for().with_query(done=what, **query)
        return web.HTTPSeeOther(target)


def _problems(error: Any) -> list[str]:
    return list(getattr(error, "problems", None) or [str(error)])
