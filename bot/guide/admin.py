"""The service guide in the admin console: what is there; upload, preview, apply.

An upload is checked with `book.parse_guide` (every problem listed; a file with
problems changes nothing). A valid one is previewed (its services, what changes
against the community's current file, warnings) and kept in memory until the
admin applies it (bot.coordination.pending_uploads). Applying writes
the very text previewed over the community's file in GUIDE_DIR, atomically, and
only if that file has not changed since the preview.
"""

from __future__ import annotations

import os
import re
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from bot.guide.book import Guide, GuideError, Service, guide_dir, guide_files, parse_guide

MAX_UPLOAD = 256 * 1024


class StaleGuide(RuntimeError):
    """The community's guide file changed between preview and apply."""


@dataclass(frozen=True)
class GuideRow:
    file: str
    community: str
    services: list[str]
    warnings: list[str]
    problems: list[str]  # a hand-edited file that the assistant does not use


def overview(directory: Path | None = None) -> list[GuideRow]:
    rows = []
    for path in guide_files(directory or guide_dir()):
        try:
            guide = parse_guide(path.read_bytes())
        except GuideError as error:
            rows.append(GuideRow(path.name, "?", [], [], error.problems))
            continue
        rows.append(
            GuideRow(
                path.name,
                guide.community,
                [s.name for s in guide.services],
                list(guide.warnings),
                [],
            )
        )
    return rows


@dataclass(frozen=True)
class ServiceChange:
    name: str
    change: str  # 新增 / 修改 / 删除 / 不变


@dataclass(frozen=True)
class Preview:
    guide: Guide
    text: str
    file: str  # the file it will be written to
    replaces: bool
    revision: int  # of that file now (0: none), checked again when applying
    changes: list[ServiceChange]


def _revision(path: Path) -> int:
    return zlib.crc32(path.read_bytes()) + 1 if path.is_file() else 0


def _file_for(community: str, directory: Path) -> tuple[Path, bool]:
    """The community's current file, else a new name for it."""
    for path in guide_files(directory):
        try:
            if parse_guide(path.read_bytes()).community == community:
                return path, True
        except GuideError:
            continue
    stem = re.sub(r"[^0-9A-Za-z_-]+", "", community) or f"guide-{zlib.crc32(community.encode())}"
    return directory / f"{stem}.yml", False


def _changes(new: Guide, old: Guide | None) -> list[ServiceChange]:
    before: dict[str, Service] = {s.name: s for s in old.services} if old else {}
    out = []
    for service in new.services:
        if service.name not in before:
            out.append(ServiceChange(service.name, "新增"))
        elif before[service.name] != service:
            out.append(ServiceChange(service.name, "修改"))
        else:
            out.append(ServiceChange(service.name, "不变"))
    names = {s.name for s in new.services}
    out += [ServiceChange(name, "删除") for name in before if name not in names]
    return out


def preview(raw: bytes, directory: Path | None = None) -> Preview:
    """Check an uploaded guide file (GuideError with every problem) and show what
    applying it would change."""
    directory = directory or guide_dir()
    if len(raw) > MAX_UPLOAD:
        raise GuideError([f"文件太大（最大{MAX_UPLOAD // 1024} KB）。"])
    guide = parse_guide(raw)
    text = raw.decode("utf-8")
    path, replaces = _file_for(guide.community, directory)
    old = None
    if replaces:
        try:
            old = parse_guide(path.read_bytes())
        except GuideError:
            old = None
    return Preview(guide, text, path.name, replaces, _revision(path), _changes(guide, old))


def apply(text: str, file: str, revision: int, directory: Path | None = None) -> Guide:
    """Write the previewed text as the community's guide (checked once more)."""
    directory = directory or guide_dir()
    guide = parse_guide(text.encode("utf-8"))
    if Path(file).name != file or not file.endswith(".yml"):
        raise GuideError([f"文件名“{file}”无效。"])
    target = directory / file
    if _revision(target) != revision:
        raise StaleGuide(file)
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".upload-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return guide
