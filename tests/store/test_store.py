"""Engines, migrations and the schema."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from bot.store.db import make_engine, read_only, session_scope
from bot.store.migrate import alembic_config, upgrade_to_head
from bot.store.models import Community, Grid, UTCDateTime, metadata


def test_migration_matches_the_models(engine) -> None:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, metadata) == []


def test_upgrade_is_idempotent(db_url) -> None:
    upgrade_to_head(db_url)
    upgrade_to_head(db_url)
    engine = make_engine(db_url)
    with engine.connect() as conn:
        head = ScriptDirectory.from_config(alembic_config()).get_current_head()
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == head
        names = set(inspect(conn).get_table_names())
    engine.dispose()
    assert {t.name for t in metadata.sorted_tables} <= names


def test_downgrade_and_upgrade_again(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'd.db'}"
    upgrade_to_head(url)
    engine = make_engine(url)
    with engine.begin() as conn:
        config = alembic_config()
        config.attributes["connection"] = conn
        command.downgrade(config, "base")
    with engine.connect() as conn:
        assert "tickets" not in inspect(conn).get_table_names()
    upgrade_to_head(engine)
    with engine.connect() as conn:
        assert "tickets" in inspect(conn).get_table_names()
    engine.dispose()


def test_sqlite_connections_are_set_up_for_several_processes(tmp_path) -> None:
    db = tmp_path / "nested" / "dir" / "x.db"
    engine = make_engine(f"sqlite:///{db}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    assert db.exists()  # parent directories were created
    engine.dispose()


def test_foreign_keys_are_enforced(engine) -> None:
    with pytest.raises(IntegrityError):
        with session_scope(engine) as s:
            s.add(Grid(code="X-1", name="x", community_id=12345))


def test_read_only_sessions_do_not_block_writers(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    upgrade_to_head(url)
    engine = make_engine(url)
    with session_scope(engine, readonly=True) as reader:
        reader.execute(text("SELECT count(*) FROM communities")).scalar_one()
        # While the reader's transaction is open, a writer still gets in.
        with session_scope(engine) as writer:
            writer.add(Community(name="测试社区", aliases=[]))
    with session_scope(read_only(engine)) as s:
        assert s.execute(text("SELECT count(*) FROM communities")).scalar_one() == 1
    engine.dispose()


def test_in_memory_sqlite_works(tmp_path) -> None:
    engine = make_engine("sqlite://")
    upgrade_to_head(engine)
    with session_scope(engine) as s:
        s.add(Community(name="内存社区", aliases=["内存"]))
    with session_scope(engine) as s:
        assert s.execute(text("SELECT name FROM communities")).scalar_one() == "内存社区"
    engine.dispose()


def test_times_are_aware_utc_in_python_and_naive_utc_in_the_database(engine) -> None:
    shanghai = datetime(2026, 11, 27, 10, 0).astimezone()
    kind = UTCDateTime()
    stored = kind.process_bind_param(
        datetime(2026, 11, 27, 10, 0, tzinfo=timezone.utc), engine.dialect
    )
    assert stored == datetime(2026, 11, 27, 10, 0) and stored.tzinfo is None
    loaded = kind.process_result_value(stored, engine.dialect)
    assert loaded.tzinfo == timezone.utc
    assert kind.process_bind_param(shanghai, engine.dialect).tzinfo is None
    with pytest.raises(ValueError):
        kind.process_bind_param(datetime(2026, 11, 27), engine.dialect)


def test_a_database_with_tickets_migrates_from_the_first_revision(tmp_path) -> None:
    """Changing a table on SQLite copies it; the foreign keys onto tickets must not
    refuse that once tickets exist (a deployment upgrading, not a new database)."""
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    with engine.begin() as connection:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, "0001_initial")
        connection.execute(
            text(
                "INSERT INTO tickets (id, number, category_code, kind, description, status,"
                " level, due_at, channel, sender_id, photos, version, created_at, updated_at)"
                " VALUES (1, '20260101-0001', 'HEATING', 'complaint', '暖气不热', 'open',"
                " 'grid', '2026-01-02', 'wechat', 'oResident', '[]', 1,"
                " '2026-01-01', '2026-01-01')"
            )
        )
        connection.execute(
            text(
                "INSERT INTO ticket_events (ticket_id, type, actor, data, at) VALUES"
                " (1, 'created', 'resident', '{\"report_key\": \"report:m1\"}', '2026-01-01')"
            )
        )
    upgrade_to_head(engine)
    with engine.connect() as connection:
        ticket = connection.execute(text("SELECT number, report_key FROM tickets")).one()
        events = connection.execute(text("SELECT count(*) FROM ticket_events")).scalar()
        foreign_keys = connection.exec_driver_sql("PRAGMA foreign_keys").scalar()
    engine.dispose()
    assert tuple(ticket) == ("20260101-0001", "report:m1") and events == 1
    assert foreign_keys == 1  # on again for the connection's next user
