"""Guide files: reading, checking, finding the entry a question is about.

Format (data/guides/<name>.yml, one per community):

    community: 和平新村社区            # as in the grid directory
    office:
      name: 和平新村社区党群服务中心
      address: 和平新村2号楼南侧一楼
      phone: 0531-86001234
      hours: 周一至周五 8:30-12:00、13:30-17:30
    services:
      - name: 居住证明
        category: CERTIFICATE         # taxonomy.yml code (a service it details)
        keywords: [居住证明, 住址证明]  # words residents use for it
        materials: [本人身份证原件, 户口本或房产证（租房的带租房合同）]
        where: 社区党群服务中心一楼便民服务窗口
        hours: 工作日办公时间            # optional: the office's hours otherwise
        duration: 材料齐全当场开具
        online: 不能网上办理，需本人到社区
        notes: 代办需带委托书和代办人身份证   # optional

Every service category of taxonomy.yml should have an entry (a missing one is a
warning, not a problem: the assistant then opens the ticket without a list).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bot.nlu.normalise import normalise
from bot.settings import get_settings
from bot.taxonomy import Taxonomy, get_taxonomy

MAX_FILE_BYTES = 256 * 1024
MAX_SERVICES = 200
MAX_TEXT = 500
OFFICE_FIELDS = ("name", "address", "phone", "hours")
REQUIRED_OFFICE = ("name", "address", "hours")
SERVICE_FIELDS = (
    "name",
    "category",
    "keywords",
    "materials",
    "where",
    "hours",
    "duration",
    "online",
    "notes",
)
REQUIRED_SERVICE = ("name", "keywords", "materials", "where", "duration", "online")
# Questions about the office itself ("社区几点上班", "居委会在哪"), not one service.
OFFICE_WORDS = ("几点上班", "几点下班", "上班时间", "办公时间", "几点开门", "周末上班", "在哪办公")
# "居委会在哪", "社区电话多少", "服务中心的座机号码"
OFFICE_QUESTION = re.compile(r"(社区|居委会|服务中心).{0,4}(在哪|电话|号码|座机)")


class GuideError(ValueError):
    """A guide file that cannot be used; `problems` lists every problem found."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Office:
    name: str
    address: str
    hours: str
    phone: str = ""


@dataclass(frozen=True)
class Service:
    name: str
    keywords: tuple[str, ...]
    materials: tuple[str, ...]
    where: str
    duration: str
    online: str
    category: str | None = None
    hours: str | None = None
    notes: str | None = None


@dataclass(frozen=True)
class Guide:
    community: str
    office: Office
    services: tuple[Service, ...]
    warnings: tuple[str, ...] = ()

    def for_category(self, code: str) -> Service | None:
        return next((s for s in self.services if s.category == code), None)


# -- reading and checking ------------------------------------------------------------


class _NoAliases(yaml.SafeLoader):
    """YAML without anchors/aliases (a small file must not expand into a huge one)."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise GuideError(["文件中不能使用YAML锚点/别名（&、*）。"])
        return super().compose_node(parent, index)


def _text(value: Any) -> str | None:
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        text = str(value).strip()
        return text or None
    return None


def parse_guide(raw: bytes | str, taxonomy: Taxonomy | None = None) -> Guide:
    """A guide from a file's content; GuideError listing every problem otherwise."""
    if isinstance(raw, bytes):
        if len(raw) > MAX_FILE_BYTES:
            raise GuideError([f"文件太大（最大{MAX_FILE_BYTES // 1024} KB）。"])
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise GuideError(["文件不是UTF-8编码的文本。"]) from None
    try:
        data = yaml.load(raw, Loader=_NoAliases)  # noqa: S506 - a SafeLoader
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"第{mark.line + 1}行：" if mark is not None else ""
        problem = getattr(error, "problem", "") or error
        raise GuideError([f"{where}不是有效的YAML（{problem}）。"]) from None
    if not isinstance(data, dict):
        raise GuideError(["文件内容应是一个包含 community、office、services 的对象。"])

    taxonomy = taxonomy or get_taxonomy()
    problems: list[str] = []
    for key in data:
        if key not in ("community", "office", "services"):
            problems.append(f"未知的字段“{key}”（只能有 community、office、services）。")
    community = _text(data.get("community"))
    if community is None:
        problems.append("缺少 community（社区名称，与网格目录一致）。")

    office = _office(data.get("office"), problems)
    services = _services(data.get("services"), taxonomy, problems)
    if problems:
        raise GuideError(problems)
    covered = {s.category for s in services}
    warnings = tuple(
        f"taxonomy.yml 的服务“{c.label}”（{c.code}）没有办事指南条目。"
        for c in taxonomy.categories
        if c.kind == "service" and c.code not in covered
    )
    return Guide(community or "", office, tuple(services), warnings)  # type: ignore[arg-type]


def _office(raw: Any, problems: list[str]) -> Office | None:
    if not isinstance(raw, dict):
        problems.append("缺少 office（社区办公地点、电话、办公时间）。")
        return None
    for key in raw:
        if key not in OFFICE_FIELDS:
            problems.append(f"office：未知的字段“{key}”。")
    values = {key: _text(raw.get(key)) for key in OFFICE_FIELDS}
    for key in REQUIRED_OFFICE:
        if values[key] is None:
            problems.append(f"office：缺少 {key}。")
    return Office(
        name=values["name"] or "",
        address=values["address"] or "",
        hours=values["hours"] or "",
        phone=values["phone"] or "",
    )


def _texts(value: Any) -> list[str] | None:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        return None
    texts = [_text(v) for v in value]
    return None if any(t is None for t in texts) else texts  # type: ignore[return-value]


def _services(raw: Any, taxonomy: Taxonomy, problems: list[str]) -> list[Service]:
    if not isinstance(raw, list) or not raw:
        problems.append("缺少 services（至少一项业务）。")
        return []
    if len(raw) > MAX_SERVICES:
        problems.append(f"services 太多（最多{MAX_SERVICES}项）。")
        return []
    services: list[Service] = []
    owner: dict[str, str] = {}  # keyword -> service name
    categories: dict[str, str] = {}
    for index, item in enumerate(raw, start=1):
        where = f"services 第{index}项"
        if not isinstance(item, dict):
            problems.append(f"{where}：应是一个对象（name、materials、where ……）。")
            continue
        name = _text(item.get("name"))
        if name:
            where = f"{where}（{name}）"
        for key in item:
            if key not in SERVICE_FIELDS:
                problems.append(f"{where}：未知的字段“{key}”。")
        for key in REQUIRED_SERVICE:
            if item.get(key) in (None, "", []):
                problems.append(f"{where}：缺少 {key}。")
        keywords = _texts(item.get("keywords")) or []
        materials = _texts(item.get("materials")) or []
        if item.get("keywords") is not None and _texts(item.get("keywords")) is None:
            problems.append(f"{where}：keywords 应是文字的列表。")
        if item.get("materials") is not None and _texts(item.get("materials")) is None:
            problems.append(f"{where}：materials 应是文字的列表。")
        for key in ("where", "hours", "duration", "online", "notes"):
            value = item.get(key)
            if value is not None and _text(value) is None:
                problems.append(f"{where}：{key} 应是一段文字。")
            elif value is not None and len(str(value)) > MAX_TEXT:
                problems.append(f"{where}：{key} 太长（最多{MAX_TEXT}字）。")
        category = _text(item.get("category"))
        if category is not None:
            known = taxonomy.by_code(category)
            if known is None:
                problems.append(f"{where}：category “{category}” 不是 taxonomy.yml 的类别代码。")
            elif category in categories:
                problems.append(
                    f"{where}：类别 {category} 已由“{categories[category]}”说明，每个类别一项。"
                )
            else:
                categories[category] = name or str(index)
        for word in keywords:
            key = _key(word)
            if not key:
                continue
            if key in owner and owner[key] != name:
                problems.append(f"{where}：关键词“{word}”已用于“{owner[key]}”。")
            owner[key] = name or str(index)
        services.append(
            Service(
                name=name or "",
                keywords=tuple(keywords),
                materials=tuple(materials),
                where=_text(item.get("where")) or "",
                duration=_text(item.get("duration")) or "",
                online=_text(item.get("online")) or "",
                category=category,
                hours=_text(item.get("hours")),
                notes=_text(item.get("notes")),
            )
        )
    return services


def _key(text: str) -> str:
    return re.sub(r"\s+", "", normalise(text, max_chars=None)).lower()


# -- the guides of this installation ---------------------------------------------------


def guide_dir() -> Path:
    return get_settings().guide_dir


@dataclass
class _Cache:
    stamp: tuple[tuple[str, float, int], ...] = ()
    guides: dict[str, Guide] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


_cache = _Cache()


def guide_files(directory: Path | None = None) -> list[Path]:
    directory = directory or guide_dir()
    return sorted(directory.glob("*.yml")) if directory.is_dir() else []


def load_guides(directory: Path | None = None) -> dict[str, Guide]:
    """community name -> guide, for every valid file (read again when files change).

    A file that fails its checks is skipped (logged); the admin console never
    writes one, so this only happens to hand-edited files.
    """
    files = guide_files(directory)
    stamp = tuple((str(p), p.stat().st_mtime, p.stat().st_size) for p in files)
    with _cache.lock:
        if stamp == _cache.stamp and directory is None:
            return _cache.guides
        guides: dict[str, Guide] = {}
        for path in files:
            try:
                guide = parse_guide(path.read_bytes())
            except GuideError as error:
                import logging

                logging.getLogger(__name__).error("guide %s not used: %s", path, error)
                continue
            guides[guide.community] = guide
        if directory is None:
            _cache.stamp, _cache.guides = stamp, guides
        return guides


def guide_for(community: str | None, guides: dict[str, Guide] | None = None) -> Guide | None:
    """The community's guide; without a (known) community, the only guide if there is
    one, else None (the assistant then asks where the resident lives)."""
    guides = guides if guides is not None else load_guides()
    if community and community in guides:
        return guides[community]
    if len(guides) == 1:
        return next(iter(guides.values()))
    return None


# -- questions ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Match:
    """What a question is about: a service of the guide, or the office itself."""

    guide: Guide
    service: Service | None  # None: the office (hours, address)


def find(guide: Guide, text: str, category: str | None = None) -> Match | None:
    """The guide's entry a question is about: the service whose keyword (or name)
    it contains, longest match first; else the one of `category` (what the NLU
    thought); else the office, when the question is about hours or where; else None."""
    said = _key(text)
    best: tuple[int, Service] | None = None
    for service in guide.services:
        for word in (*service.keywords, service.name):
            key = _key(word)
            if key and key in said and (best is None or len(key) > best[0]):
                best = (len(key), service)
    if best is None:
        best = _sounds_like(guide, said)
    if best is not None:
        return Match(guide, best[1])
    if category:
        service = guide.for_category(category)
        if service is not None:
            return Match(guide, service)
    if any(word in said for word in OFFICE_WORDS) or OFFICE_QUESTION.search(said):
        return Match(guide, None)
    return None


def _sounds_like(guide: Guide, said: str) -> tuple[int, Service] | None:
    """The service a keyword of which the question spells with homophones (低宝 for
    低保, 措施停车 for 错时停车, typed pinyin): phone keyboards offer every
    character of the right sound. Whole syllables only, two at least."""
    from bot.nlu.pinyin import to_pinyin

    heard = f" {to_pinyin(said)} "
    best: tuple[int, Service] | None = None
    for service in guide.services:
        for word in (*service.keywords, service.name):
            sound = to_pinyin(_key(word))
            syllables = len(sound.split())
            if syllables >= 2 and f" {sound} " in heard and (best is None or syllables > best[0]):
                best = (syllables, service)
    return best


def materials_text(service: Service) -> str:
    """The materials as a numbered list, one a line."""
    return "\n".join(f"{i}. {m}" for i, m in enumerate(service.materials, start=1))


def service_names(guide: Guide, limit: int = 12) -> str:
    return "、".join(s.name for s in guide.services[:limit])


def answer_fields(match: Match) -> dict[str, str]:
    """The values of the guide's reply templates (domain.yml's utter_guide_*)."""
    office = match.guide.office
    fields = {
        "community": match.guide.community,
        "office_name": office.name,
        "office_address": office.address,
        "office_hours": office.hours,
        "office_phone": office.phone or "—",
    }
    service = match.service
    if service is not None:
        fields.update(
            service_name=service.name,
            materials=materials_text(service),
            where=service.where,
            hours=service.hours or office.hours,
            duration=service.duration,
            online=service.online,
            notes=service.notes or "",
        )
    return fields


def problems_of(paths: Iterable[Path]) -> dict[str, list[str]]:
    """Every file's problems (empty list: fine); for `make validate`-like checks."""
    out: dict[str, list[str]] = {}
    for path in paths:
        try:
            parse_guide(path.read_bytes())
            out[str(path)] = []
        except GuideError as error:
            out[str(path)] = error.problems
    return out
