"""Guide files: the demo guides, every problem of a broken file, finding the answer."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.guide import admin, book
from bot.settings import PROJECT_ROOT
from bot.taxonomy import get_taxonomy

DEMO = PROJECT_ROOT / "data" / "guides"
HPXC = "和平新村社区"


def demo_guides() -> dict[str, book.Guide]:
    return book.load_guides(DEMO)


def test_the_demo_guides_are_valid_and_cover_every_service_of_the_taxonomy() -> None:
    guides = demo_guides()
    assert set(guides) == {"和平新村社区", "裕园社区"}  # the two demo communities
    services = {c.code for c in get_taxonomy().categories if c.kind == "service"}
    for guide in guides.values():
        assert guide.warnings == ()
        assert services <= {s.category for s in guide.services}
        for service in guide.services:
            assert service.materials and service.where and service.duration and service.online
        assert guide.office.hours and guide.office.address


@pytest.mark.parametrize(
    ("question", "answer"),
    [
        ("开居住证明要带啥", "居住证明"),
        ("低保咋申请", "低保申请"),
        ("社区几点上班", None),
        ("错时停车在哪办", "错时停车"),
        ("居委会在哪", None),
        ("回迁选房要带什么", "棚改回迁"),
        ("夜间停车证去哪办", "错时停车"),
        ("居委会电话多少", None),
        ("低宝要啥材料", "低保申请"),  # a homophone typo: the keyword's sound
        ("措时停车在哪半", "错时停车"),
    ],
)
def test_questions_find_their_entry(question: str, answer: str | None) -> None:
    match = book.find(demo_guides()[HPXC], question)
    assert match is not None
    assert (match.service.name if match.service else None) == answer


def test_no_entry_for_other_questions_but_the_category_hint_helps() -> None:
    guide = demo_guides()[HPXC]
    assert book.find(guide, "你好") is None
    hinted = book.find(guide, "那个怎么弄啊", category="SUBSIDY")
    assert hinted is not None and hinted.service is not None
    assert hinted.service.name == "低保申请"


def test_answer_fields_use_the_office_hours_when_a_service_has_none() -> None:
    guide = demo_guides()[HPXC]
    fields = book.answer_fields(book.find(guide, "居住证明要带啥"))
    assert fields["hours"] == guide.office.hours
    assert fields["materials"].startswith("1. 本人身份证原件\n2. ")
    office = book.answer_fields(book.find(guide, "社区几点上班"))
    assert office["office_hours"] == guide.office.hours and "service_name" not in office


GOOD = """
community: 测试社区
office: {name: 测试社区居委会, address: 1号楼, hours: 工作日}
services:
  - name: 居住证明
    category: CERTIFICATE
    keywords: [居住证明]
    materials: [身份证]
    where: 窗口
    duration: 当场
    online: 不能
"""


def test_a_minimal_guide_is_fine_but_warns_about_uncovered_services() -> None:
    guide = book.parse_guide(GOOD)
    assert guide.community == "测试社区" and len(guide.services) == 1
    assert any("SUBSIDY" in w for w in guide.warnings)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ["文件内容应是一个"]),
        ("- just\n- a list\n", ["文件内容应是一个"]),
        ("community: [unclosed\n", ["不是有效的YAML"]),
        ("a: &x [1]\nb: *x\n", ["锚点"]),
        (
            "office: {name: x}\nservices: []\nextra: 1\n",
            ["未知的字段“extra”", "缺少 community", "office：缺少 address", "缺少 services"],
        ),
        (
            GOOD.replace("category: CERTIFICATE", "category: PASSPORT")
            .replace("    materials: [身份证]\n", "    color: red\n")
            .replace("online: 不能", "online: [不能]"),
            [
                "不是 taxonomy.yml 的类别代码",
                "未知的字段“color”",
                "缺少 materials",
                "online 应是一段文字",
            ],
        ),
        (
            GOOD + "  - {name: 户籍证明, category: CERTIFICATE, keywords: [居住证明], "
            "materials: [x], where: x, duration: x, online: x}\n",
            ["类别 CERTIFICATE 已由“居住证明”说明", "关键词“居住证明”已用于“居住证明”"],
        ),
    ],
)
def test_every_problem_is_listed(text: str, expected: list[str]) -> None:
    with pytest.raises(book.GuideError) as error:
        book.parse_guide(text)
    problems = "\n".join(error.value.problems)
    for part in expected:
        assert part in problems


def test_bytes_that_are_no_text_or_too_large_are_refused() -> None:
    with pytest.raises(book.GuideError, match="UTF-8"):
        book.parse_guide(b"\xff\xfe\x00c\x00o")
    with pytest.raises(book.GuideError, match="太大"):
        book.parse_guide(b"#" * (book.MAX_FILE_BYTES + 1))


# -- admin: preview and apply ------------------------------------------------------------


def test_preview_then_apply_replaces_the_communitys_file(tmp_path: Path) -> None:
    for path in DEMO.glob("*.yml"):
        (tmp_path / path.name).write_bytes(path.read_bytes())
    current = (DEMO / "yuyuan.yml").read_text(encoding="utf-8")
    changed = current.replace("duration: 材料齐全当场开具", "duration: 当场开具，最多10分钟")
    preview = admin.preview(changed.encode(), tmp_path)
    assert preview.file == "yuyuan.yml" and preview.replaces
    assert [c.change for c in preview.changes if c.name == "居住证明"] == ["修改"]
    admin.apply(preview.text, preview.file, preview.revision, tmp_path)
    guide = book.load_guides(tmp_path)["裕园社区"]
    assert guide.for_category("CERTIFICATE").duration == "当场开具，最多10分钟"
    # applied once: the same preview cannot be applied over the new file again
    with pytest.raises(admin.StaleGuide):
        admin.apply(preview.text, preview.file, preview.revision, tmp_path)


def test_a_broken_upload_changes_nothing(tmp_path: Path) -> None:
    (tmp_path / "yuyuan.yml").write_bytes((DEMO / "yuyuan.yml").read_bytes())
    before = sorted((p.name, p.read_bytes()) for p in tmp_path.iterdir())
    with pytest.raises(book.GuideError):
        admin.preview(b"community: \xe8\xa3\x95\xe5\x9b\xad\xe7\xa4\xbe\xe5\x8c\xba\n", tmp_path)
    with pytest.raises(book.GuideError):
        admin.apply("community: x\n", "yuyuan.yml", 0, tmp_path)
    with pytest.raises(book.GuideError):
        admin.apply(GOOD, "../evil.yml", 0, tmp_path)
    assert sorted((p.name, p.read_bytes()) for p in tmp_path.iterdir()) == before
