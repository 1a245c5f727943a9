"""`python -m bot ...`: grids import, locate, escalate, db upgrade, demo-load."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timezone

import pytest
from sqlalchemy import func, select

from bot.cli import main
from bot.routing.locator import get_locator
from bot.settings import PROJECT_ROOT
from bot.store.db import make_engine, session_scope
from bot.store.models import Grid, Ticket
from bot.tickets.service import open_ticket
from tests.helpers import DEMO_FILE

LONG_AGO = datetime(2020, 1, 1, tzinfo=timezone.utc)


def run_cli(*args: str, db_url: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATABASE_URL": db_url, "PYTHONPATH": str(PROJECT_ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def loaded_db(tmp_path_factory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('cli') / 'sub' / 'cli.db'}"  # dir is created
    first = run_cli("grids", "import", str(DEMO_FILE), db_url=url)
    assert first.returncode == 0, first.stderr
    assert "add 7 grid" in first.stdout and "HPXC-01" in first.stdout
    again = run_cli("grids", "import", str(DEMO_FILE), db_url=url)
    assert again.returncode == 0 and "no changes" in again.stdout
    return url


def _json(result: subprocess.CompletedProcess) -> dict:
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result.stdout  # exactly one JSON object, nothing else
    return json.loads(lines[0])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "俺家住和平新村3号楼2单元501 暖气不热",
            {
                "community": "和平新村社区",
                "building": 3,
                "unit": "2",
                "room": "501",
                "grid": "HPXC-01",
                "level": "grid",
            },
        ),
        (
            "和平新村999号楼",
            {
                "community": "和平新村社区",
                "building": 999,
                "unit": None,
                "room": None,
                "grid": None,
                "level": "community",
            },
        ),
        (
            "今天天气怎么样",
            {
                "community": None,
                "building": None,
                "unit": None,
                "room": None,
                "grid": None,
                "level": None,
            },
        ),
    ],
)
def test_locate_text(loaded_db, text, expected) -> None:
    result = run_cli("locate", text, db_url=loaded_db)
    assert _json(result) == expected
    assert "和平新村" not in result.stdout or "\\u" not in result.stdout  # ensure_ascii=False


def test_locate_point(loaded_db) -> None:
    got = _json(run_cli("locate", "--point", "36.6610,117.0285", db_url=loaded_db))
    assert (got["community"], got["grid"], got["level"]) == ("和平新村社区", "HPXC-01", "grid")
    nowhere = _json(run_cli("locate", "--point", "39.9,116.4", db_url=loaded_db))
    assert set(nowhere.values()) == {None}


def test_locate_against_a_file_needs_no_database(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'unused.db'}"
    got = _json(run_cli("locate", "裕园12号楼", "--directory", str(DEMO_FILE), db_url=url))
    assert got["grid"] == "YY-02"
    assert not (tmp_path / "unused.db").exists()


def test_bad_arguments(loaded_db) -> None:
    assert run_cli("locate", db_url=loaded_db).returncode == 2
    bad = run_cli("locate", "--point", "north", db_url=loaded_db)
    assert bad.returncode == 2 and "LAT,LON" in bad.stderr


def test_hostile_import_is_refused_and_changes_nothing(loaded_db, tmp_path) -> None:
    hostile = tmp_path / "dup.yml"
    hostile.write_text(
        DEMO_FILE.read_text(encoding="utf-8").replace("code: HPXC-02", "code: HPXC-01"),
        encoding="utf-8",
    )
    engine = make_engine(loaded_db)
    with session_scope(engine) as s:
        before = s.execute(select(Grid.code, Grid.name, Grid.active)).all()
    result = run_cli("grids", "import", str(hostile), db_url=loaded_db)
    assert result.returncode == 2
    assert "duplicate grid code" in result.stderr and "nothing changed" in result.stderr
    with session_scope(engine) as s:
        assert s.execute(select(Grid.code, Grid.name, Grid.active)).all() == before
    engine.dispose()


# In-process (faster) for the rest.


def test_escalate_db_upgrade_and_demo_load(tmp_path, capsys) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    assert main(["--database-url", url, "db", "upgrade"]) == 0
    assert main(["--database-url", url, "demo-load", "--file", str(DEMO_FILE)]) == 0
    assert "HPXC-01" in capsys.readouterr().out
    assert main(["--database-url", url, "demo-load", "--file", str(DEMO_FILE)]) == 0
    assert "already loaded" in capsys.readouterr().out

    engine = make_engine(url)
    with session_scope(engine) as s:
        where = get_locator(s).locate_text("和平新村3号楼")
        open_ticket(
            s,
            sender_id="u1",
            channel="wechat",
            message_id="m1",
            category_code="HEATING",
            description="暖气不热",
            location=where,
            now=LONG_AGO,
        )
    assert main(["--database-url", url, "escalate"]) == 0
    out = capsys.readouterr().out
    assert "grid -> community" in out
    assert main(["--database-url", url, "escalate"]) == 0
    assert "nothing overdue" in capsys.readouterr().out
    with session_scope(engine) as s:
        assert s.execute(select(func.count(Ticket.id))).scalar_one() == 1
    engine.dispose()


def test_commands_are_registered() -> None:
    from bot.cli import _COMMANDS, command

    assert {"grids", "locate", "escalate", "db", "demo-load"} <= set(_COMMANDS)
    with pytest.raises(ValueError):
        command("locate", "again")(lambda p: None)
