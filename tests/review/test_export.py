"""Export of reviewed examples: Rasa YAML, deduplicated, idempotent, valid."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from bot.cli import main as cli_main
from bot.review.export import REVIEWED_FILE, export_reviewed, nlu_examples
from bot.review.inbox import decide, undo
from bot.review.text import text_hash
from bot.settings import PROJECT_ROOT
from bot.store.db import session_scope
from tests.fakes import TrackerLog

ADMIN = "worker:9:管理员"
HOLDOUT = "tests/data/holdout_*.yml"
# An example of data/nlu/complaints.yml and a held-out message (tests/data).
EXISTING = "俺家暖气片摸着冰凉"
HELD_OUT = "煤气灶就剩一圈小蓝火苗 炒个菜半天"


def act(engine, text: str, action: str, label: str | None = None) -> None:
    with session_scope(engine) as session:
        assert decide(session, [text_hash(text)], action, ADMIN, label=label).groups == 1


@pytest.fixture
def reviewed(web_engine, tracker: TrackerLog, copy_log) -> None:
    assert any(t == EXISTING for _i, t in nlu_examples(PROJECT_ROOT / "data/nlu/complaints.yml"))
    tracker.user(
        "锅炉房说今天烧到六十度了 俺家还是冰凉", "report_noise", 0.5, "report_heating", 0.4
    )
    tracker.user("小区东门那个路灯一闪一闪的", "report_facility", 0.8)
    tracker.user("明天会下雨吗", "greet", 0.3)
    tracker.user("哈哈哈哈", "greet", 0.5)
    tracker.user(EXISTING + "！", "report_heating", 0.6)  # the data has it already
    tracker.user(HELD_OUT, "report_heating", 0.7)  # evaluation must stay unseen
    tracker.user("[图片](photo) 看这个", "share_photo", 0.7)  # Rasa's entity syntax
    copy_log()
    act(web_engine, "锅炉房说今天烧到六十度了 俺家还是冰凉", "relabel", "report_heating")
    act(web_engine, "小区东门那个路灯一闪一闪的", "confirm")
    act(web_engine, "明天会下雨吗", "out_of_scope")
    act(web_engine, "哈哈哈哈", "dismiss")
    act(web_engine, EXISTING + "！", "confirm")
    act(web_engine, HELD_OUT, "confirm")
    act(web_engine, "[图片](photo) 看这个", "relabel", "greet")


def test_export_writes_new_examples_only(web_engine, nlu_dir: Path, reviewed) -> None:
    result = export_reviewed(web_engine, nlu_dir, HOLDOUT)
    assert result.path == nlu_dir / REVIEWED_FILE
    assert (result.added, result.total, result.changed) == (3, 3, True)
    assert result.skipped == 3
    assert result.skipped_by_reason == {"duplicate": 1, "held_out": 1, "annotation_syntax": 1}
    assert sorted(nlu_examples(result.path)) == [
        ("out_of_scope", "明天会下雨吗"),
        ("report_facility", "小区东门那个路灯一闪一闪的"),
        ("report_heating", "锅炉房说今天烧到六十度了 俺家还是冰凉"),
    ]
    data = yaml.safe_load(result.path.read_text(encoding="utf-8"))
    assert data["version"] == "3.1"
    assert [block["intent"] for block in data["nlu"]] == sorted(b["intent"] for b in data["nlu"])


def test_export_is_idempotent_and_follows_undo(web_engine, nlu_dir: Path, reviewed) -> None:
    first = export_reviewed(web_engine, nlu_dir, HOLDOUT)
    content = first.path.read_bytes()
    mtime = first.path.stat().st_mtime_ns
    again = export_reviewed(web_engine, nlu_dir, HOLDOUT)
    assert (again.added, again.removed, again.changed, again.total) == (0, 0, False, 3)
    assert first.path.read_bytes() == content and first.path.stat().st_mtime_ns == mtime

    with session_scope(web_engine) as session:
        undo(session, [text_hash("明天会下雨吗")])
    after_undo = export_reviewed(web_engine, nlu_dir, HOLDOUT)
    assert (after_undo.removed, after_undo.total) == (1, 2)
    assert ("out_of_scope", "明天会下雨吗") not in nlu_examples(after_undo.path)


def test_near_duplicates_of_one_export_are_written_once(
    web_engine, nlu_dir: Path, tracker: TrackerLog, copy_log
) -> None:
    # two groups (different shapes) that are 85% alike: the second is left out
    tracker.user("我们小区三号楼门口的垃圾桶已经满了好几天没有人来清理", "report_sanitation", 0.8)
    tracker.user("我们小区三号楼门口的垃圾桶已经满了好几天没有人来清理了", "report_sanitation", 0.8)
    copy_log()
    act(web_engine, "我们小区三号楼门口的垃圾桶已经满了好几天没有人来清理", "confirm")
    act(web_engine, "我们小区三号楼门口的垃圾桶已经满了好几天没有人来清理了", "confirm")
    result = export_reviewed(web_engine, nlu_dir, HOLDOUT)
    assert (result.total, result.skipped_by_reason) == (1, {"duplicate": 1})


def test_nothing_reviewed_gives_an_empty_but_valid_file(web_engine, nlu_dir: Path) -> None:
    result = export_reviewed(web_engine, nlu_dir, HOLDOUT)
    assert result.total == 0
    assert yaml.safe_load(result.path.read_text(encoding="utf-8"))["nlu"] == []


def test_exported_file_passes_rasa_data_validate(
    web_engine, nlu_dir: Path, reviewed, tmp_path: Path
) -> None:
    """What `make validate` runs (`rasa data validate --fail-on-warnings`), on the
    NLU data with the exported file in it, plus the project's own NLU data tests."""
    from rasa.cli.utils import validate_files
    from rasa.shared.importers.importer import TrainingDataImporter
    from rasa.shared.nlu.training_data.formats.rasa_yaml import RasaYAMLReader

    result = export_reviewed(web_engine, nlu_dir, HOLDOUT)
    training = RasaYAMLReader().read(result.path)
    assert sorted(training.intents) == ["out_of_scope", "report_facility", "report_heating"]
    assert len(training.intent_examples) == 3

    importer = TrainingDataImporter.load_from_config(
        config_path=str(PROJECT_ROOT / "config.yml"),
        domain_path=str(PROJECT_ROOT / "domain.yml"),
        training_data_paths=[
            str(nlu_dir),
            str(PROJECT_ROOT / "data" / "rules"),
            str(PROJECT_ROOT / "data" / "stories"),
        ],
    )
    try:
        validate_files(True, None, importer)  # exits (SystemExit) on any warning
    except SystemExit as exc:  # pragma: no cover - the failure message is in the log
        pytest.fail(f"rasa data validate --fail-on-warnings failed ({exc.code})")

    # The training data's own rules (tests/test_training_data.py) still hold.
    from tests import test_training_data as rules

    examples: dict[str, list[str]] = {}
    for path in sorted(nlu_dir.glob("*.yml")):
        for intent, text in nlu_examples(path):
            examples.setdefault(intent, []).append(text)
    seen: dict[str, str] = {}
    for intent, items in examples.items():
        for text in items:
            key = rules.normalise(text, max_chars=None)
            assert key not in seen, (text, seen.get(key), intent)
            seen[key] = intent
        shapes = [rules._shape(t) for t in items if len(rules._shape(t)) > 2]
        assert len(shapes) == len(set(shapes)), intent


def test_cli_export(web_db_url: str, web_engine, nlu_dir: Path, reviewed, tmp_path, capsys) -> None:
    out = tmp_path / "elsewhere" / "reviewed.yml"
    code = cli_main(
        [
            "--database-url",
            web_db_url,
            "nlu",
            "export",
            "--nlu-dir",
            str(nlu_dir),
            "--out",
            str(out),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert f"{out}: 3 examples (written; 3 new, 0 removed, 3 skipped)" in printed
    assert len(nlu_examples(out)) == 3
    assert (
        cli_main(
            [
                "--database-url",
                web_db_url,
                "nlu",
                "export",
                "--nlu-dir",
                str(nlu_dir),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert "(unchanged; 0 new" in capsys.readouterr().out


def test_the_repository_has_no_stale_export() -> None:
    """data/nlu/reviewed.yml, when present, is a file the export wrote."""
    path = PROJECT_ROOT / "data" / "nlu" / REVIEWED_FILE
    if not path.exists():
        pytest.skip("no reviewed examples exported in this checkout")
    assert path.read_text(encoding="utf-8").startswith("# Resident messages reviewed")
    shutil.copy(path, path.with_suffix(".check"))  # readable
    path.with_suffix(".check").unlink()


def test_export_leaves_out_the_hard_development_set_too(web_engine, nlu_dir, tracker, copy_log):
    from bot.training.evaluation import HARD_SET_GLOB

    hard = "不是狗叫 是楼上装修"  # tests/data/hard_negation.yml
    tracker.user(hard, "report_noise", 0.7)
    copy_log()
    act(web_engine, hard, "confirm")
    only_holdout = export_reviewed(web_engine, nlu_dir, HOLDOUT, out=nlu_dir / "a.yml")
    assert ("report_noise", hard) in nlu_examples(only_holdout.path)
    both = export_reviewed(web_engine, nlu_dir, [HOLDOUT, HARD_SET_GLOB], out=nlu_dir / "b.yml")
    assert both.skipped_by_reason == {"held_out": 1} and both.total == 0


def test_exported_examples_carry_placeholders_not_personal_data(
    web_engine, nlu_dir: Path, tracker: TrackerLog, copy_log
) -> None:
    """reviewed.yml goes into version control: no phone, ID card or room number."""
    with_data = "俺家2单元501暖气不热 电话138 1234 5678 快来人"
    tracker.user(with_data, "report_heating", 0.6)
    tracker.user("身份证370102198001011237 想开个居住证明", "request_certificate", 0.7)
    copy_log()
    act(web_engine, with_data, "confirm")
    act(web_engine, "身份证370102198001011237 想开个居住证明", "confirm")
    result = export_reviewed(web_engine, nlu_dir, HOLDOUT)
    text = result.path.read_text(encoding="utf-8")
    for secret in ("5678", "501", "370102198001011237"):
        assert secret not in text
    assert sorted(nlu_examples(result.path)) == [
        ("report_heating", "俺家2单元【房号】暖气不热 电话【电话】 快来人"),
        ("request_certificate", "身份证【身份证号】 想开个居住证明"),
    ]
