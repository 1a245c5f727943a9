"""Grid directory import: idempotent, in place, and hostile files refused."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from bot.routing.directory import (
    DirectoryError,
    apply_directory,
    diff_directory,
    load_directory_file,
    parse_directory,
)
from bot.routing.locator import get_locator
from bot.store.models import Community, Grid, GridBuilding, Street, Ticket, Worker
from tests.helpers import DEMO_FILE, located, new_ticket

DEMO = DEMO_FILE.read_text(encoding="utf-8")


def _snapshot(session) -> dict:
    """Everything the import may touch, for before/after comparisons."""
    return {
        "streets": sorted(
            session.execute(select(Street.name, Street.office_name, Street.office_phone)).all()
        ),
        "communities": sorted(
            (c.name, tuple(c.aliases), c.office_name, c.active)
            for c in session.execute(select(Community)).scalars()
        ),
        "grids": sorted(
            session.execute(
                select(Grid.code, Grid.name, Grid.worker_id, Grid.active, Grid.households)
            ).all()
        ),
        "workers": sorted(session.execute(select(Worker.phone, Worker.name)).all()),
        "buildings": sorted(
            session.execute(
                select(GridBuilding.community_id, GridBuilding.building, GridBuilding.grid_id)
            ).all()
        ),
    }


def test_demo_file_is_valid(demo_directory) -> None:
    assert [c.name for c in demo_directory.communities] == ["和平新村社区", "裕园社区"]
    assert len(demo_directory.grids) == 7
    assert demo_directory.streets["营市街街道"][0] == "营市街街道办事处"
    yy = demo_directory.communities[1]
    assert (yy.street, yy.aliases) == ("营市街街道", ("裕园", "裕园小区"))
    hp = demo_directory.communities[0]
    assert hp.grids[0].buildings == (1, 2, 3, 4, 5, 6, 8)


def test_import_is_idempotent(session, demo_directory) -> None:
    preview = diff_directory(session, demo_directory)
    assert _snapshot(session)["grids"] == []  # the preview wrote nothing
    changes = apply_directory(session, demo_directory)
    session.commit()
    assert [str(c) for c in changes] == [str(c) for c in preview]
    assert {(c.action, c.kind) for c in changes} >= {("add", "grid"), ("add", "community")}
    before = _snapshot(session)
    assert len(before["grids"]) == 7 and len(before["buildings"]) == 52

    assert diff_directory(session, demo_directory) == []
    assert apply_directory(session, demo_directory) == []
    session.commit()
    assert _snapshot(session) == before


def test_changed_file_updates_in_place(session, demo_directory) -> None:
    apply_directory(session, demo_directory)
    ticket = new_ticket(session, location=located(session, "和平新村7号楼"))
    session.commit()
    grid_ids = dict(session.execute(select(Grid.code, Grid.id)).all())

    changed = parse_directory(
        DEMO.replace("和平新村第二网格", "和平新村二网格")
        .replace('["7", "9-14"]', '["6-7", "9-14"]')
        .replace('["1-6", "8"]', '["1-5", "8"]')
        .replace('"13800000002"', '"13800000099"')
        .replace("households: 296", "households: 300")
    )
    preview = [str(c) for c in diff_directory(session, changed)]
    assert any("HPXC-02" in c and "和平新村二网格" in c for c in preview)
    changes = apply_directory(session, changed)
    session.commit()
    assert [str(c) for c in changes] == preview

    assert dict(session.execute(select(Grid.code, Grid.id)).all()) == grid_ids  # same rows
    g2 = session.execute(select(Grid).where(Grid.code == "HPXC-02")).scalar_one()
    assert g2.name == "和平新村二网格" and g2.worker.phone == "13800000099"
    assert get_locator(session).locate_text("和平新村6号楼").grid == "HPXC-02"
    assert session.get(Ticket, ticket.id).grid_id == grid_ids["HPXC-02"]
    assert apply_directory(session, changed) == []


def test_grid_missing_from_file_becomes_inactive(session, demo_directory) -> None:
    apply_directory(session, demo_directory)
    ticket = new_ticket(session, location=located(session, "和平新村25号楼"))
    session.commit()
    assert ticket.grid.code == "HPXC-04"

    start = DEMO.index("      - code: HPXC-04")
    end = DEMO.index("  # 裕园社区")
    changes = apply_directory(session, parse_directory(DEMO[:start] + DEMO[end:]))
    session.commit()
    assert [str(c) for c in changes if c.action == "deactivate"] == ["deactivate grid HPXC-04"]

    grid = session.execute(select(Grid).where(Grid.code == "HPXC-04")).scalar_one()
    assert grid.active is False
    assert session.get(Ticket, ticket.id).grid_id == grid.id  # the ticket is kept
    where = get_locator(session).locate_text("和平新村25号楼")
    assert (where.level, where.grid) == ("community", None)

    # Back in the file: active again.
    apply_directory(session, demo_directory)
    session.commit()
    assert get_locator(session).locate_text("和平新村25号楼").grid == "HPXC-04"


def test_another_streets_file_leaves_other_grids_alone(session, demo_directory) -> None:
    apply_directory(session, demo_directory)
    session.commit()
    start = DEMO.index("  # 裕园社区")
    only_hp = parse_directory(DEMO[:start])
    assert apply_directory(session, only_hp) == []  # 裕园 is another street's business


HOSTILE = {
    "broken yaml": ("communities: [\n  - name: 'x\n", "not valid YAML"),
    "not a mapping": ("- just\n- a list\n", "must be a mapping"),
    "no communities": ("street: 某街道\n", "'communities'"),
    "duplicate codes": (
        DEMO.replace("code: HPXC-02", "code: HPXC-01"),
        "duplicate grid code",
    ),
    "overlapping ranges": (
        DEMO.replace('["7", "9-14"]', '["5-7", "9-14"]'),
        "building 5 is also in grid HPXC-01",
    ),
    "missing fields": (
        DEMO.replace("        name: 和平新村第三网格\n", "").replace("          name: 陈静\n", ""),
        "missing 'name'",
    ),
    "bad range": (DEMO.replace('["15-22"]', '["22-15"]'), "ascending"),
    "huge range": (DEMO.replace('["15-22"]', '["1-99999999"]'), "not a number or range"),
    "bad polygon": (DEMO.replace("[117.0270, 36.6600]", "[917.0, 36.6]"), "polygon"),
    "duplicate key": (
        DEMO.replace(
            "    aliases: [裕园, 裕园小区]\n", "    aliases: [裕园]\n    aliases: [裕园小区]\n"
        ),
        "duplicate key",
    ),
    "alias clash": (
        DEMO.replace("aliases: [裕园, 裕园小区]", "aliases: [裕园, 和平新村]"),
        "also used",
    ),
    "yaml bomb": (
        "a: &a [x, x, x, x, x, x, x, x, x]\n"
        "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
        "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
        "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
        "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
        "f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
        "g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]\n"
        "communities: *g\n",
        "anchors and aliases",
    ),
    "python tag": ("!!python/object/apply:os.system ['echo hi']\n", "not valid YAML"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_files_are_refused_and_change_nothing(session, demo_directory, name) -> None:
    apply_directory(session, demo_directory)
    session.commit()
    before = _snapshot(session)
    text, expected = HOSTILE[name]
    with pytest.raises(DirectoryError) as info:
        parse_directory(text)
    problems = info.value.problems
    assert problems and any(expected in p for p in problems), problems
    assert _snapshot(session) == before


def test_all_problems_are_listed_at_once() -> None:
    text = DEMO.replace("code: HPXC-02", "code: HPXC-01").replace('["15-22"]', '["1-3"]')
    with pytest.raises(DirectoryError) as info:
        parse_directory(text)
    assert len(info.value.problems) >= 2


def test_oversized_and_unreadable_files(tmp_path) -> None:
    big = tmp_path / "big.yml"
    big.write_bytes(b"#" * 2_000_000)
    with pytest.raises(DirectoryError, match="larger"):
        load_directory_file(big)
    with pytest.raises(DirectoryError, match="cannot read"):
        load_directory_file(tmp_path / "missing.yml")
    latin = tmp_path / "latin.yml"
    latin.write_bytes("street: caf\xe9\n".encode("latin-1"))
    with pytest.raises(DirectoryError, match="UTF-8"):
        load_directory_file(latin)


def test_counts_after_import(session, demo_directory) -> None:
    apply_directory(session, demo_directory)
    session.commit()
    assert session.execute(select(func.count(Worker.id))).scalar_one() == 7
    assert session.execute(select(func.count(Street.id))).scalar_one() == 2
