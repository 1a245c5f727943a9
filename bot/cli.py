"""Command line: `python -m bot COMMAND ...` (run from the repository root).

Adding a command: write a function that configures its argparse parser and
sets `handler`, and decorate it with `@command(name, help)`:

    @command("hello", "say hello")
    def _hello(p: argparse.ArgumentParser) -> None:
        p.add_argument("name")
        p.set_defaults(handler=lambda args: print("hello", args.name) or 0)

Commands living in other modules register the same way; list the module in
COMMAND_MODULES so it is imported before the parser is built.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from collections import Counter as Tally
from collections.abc import Callable
from typing import TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from bot.settings import get_settings

Setup = Callable[[argparse.ArgumentParser], None]
T = TypeVar("T")

_COMMANDS: dict[str, tuple[str, Setup]] = {}

# Modules that register further commands with @command (imported lazily).
COMMAND_MODULES: tuple[str, ...] = ("bot.channels.wechat_cli", "bot.privacy.cli")


def command(name: str, help: str) -> Callable[[Setup], Setup]:
    """Register a top-level subcommand (see module docstring)."""

    def register(setup: Setup) -> Setup:
        if name in _COMMANDS:
            raise ValueError(f"command {name!r} registered twice")
        _COMMANDS[name] = (help, setup)
        return setup

    return register


def build_parser() -> argparse.ArgumentParser:
    for module in COMMAND_MODULES:
        importlib.import_module(module)
    parser = argparse.ArgumentParser(
        prog="python -m bot", description="邻里助手 / neighbourhood assistant"
    )
    parser.add_argument(
        "--database-url", help="SQLAlchemy URL (default: DATABASE_URL or var/neighbourhood.db)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (help_text, setup) in sorted(_COMMANDS.items()):
        setup(sub.add_parser(name, help=help_text, description=help_text))
    return parser


def main(argv: list[str] | None = None) -> int:
    from bot.privacy.masking import install_log_masking

    install_log_masking()  # the web app and the periodic tasks log residents' words
    args = build_parser().parse_args(argv)
    return int(args.handler(args) or 0)


# -- helpers -----------------------------------------------------------------


def _engine(args: argparse.Namespace, migrate: bool = True) -> Engine:
    """The database of this run, migrated to head first (idempotent, fast at head)."""
    from bot.store.db import make_engine
    from bot.store.migrate import upgrade_to_head

    engine = make_engine(args.database_url or get_settings().database_url)
    if migrate:
        upgrade_to_head(engine)
    return engine


def _in_transaction(
    args: argparse.Namespace, work: Callable[[Session], T], readonly: bool = False
) -> T:
    """`work(session)` in one transaction on this run's database (then closed).

    Refusals (LookupError, ValueError) propagate with nothing written: `_refused`
    prints them.
    """
    from bot.store.db import session_scope

    engine = _engine(args)
    try:
        with session_scope(engine, readonly=readonly) as session:
            return work(session)
    finally:
        engine.dispose()


def _refused(error: Exception, code: int = 2) -> int:
    print(error, file=sys.stderr)
    return code


def _print_changes(changes: list, dry_run: bool = False) -> None:
    if not changes:
        print("没有变化 / no changes: the database already matches the file")
        return
    tally = Tally((c.action, c.kind) for c in changes)
    summary = ", ".join(f"{action} {n} {kind}" for (action, kind), n in sorted(tally.items()))
    print(("would " if dry_run else "") + f"apply {len(changes)} changes: {summary}")
    for change in changes:
        print(f"  {change}")


# -- grids -------------------------------------------------------------------


@command("grids", "grid directory (import a YAML file)")
def _grids(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="grids_command", metavar="ACTION", required=True)
    imp = sub.add_parser("import", help="validate and load a grid directory file")
    imp.add_argument("file")
    imp.add_argument("--dry-run", action="store_true", help="only show what would change")
    imp.set_defaults(handler=_grids_import)


def _grids_import(args: argparse.Namespace) -> int:
    from bot.routing.directory import (
        DirectoryError,
        apply_directory,
        diff_directory,
        load_directory_file,
    )

    try:
        directory = load_directory_file(args.file)
    except DirectoryError as exc:
        print(f"{args.file}: not imported, nothing changed.", file=sys.stderr)
        for problem in exc.problems:
            print(f"  - {problem}", file=sys.stderr)
        return 2
    change = diff_directory if args.dry_run else apply_directory
    changes = _in_transaction(args, lambda session: change(session, directory))
    _print_changes(changes, dry_run=args.dry_run)
    return 0


# -- locate ------------------------------------------------------------------


@command("locate", "print where an address or a location belongs, as one JSON object")
def _locate(p: argparse.ArgumentParser) -> None:
    p.add_argument("text", nargs="?", help="an address as residents type it")
    p.add_argument("--point", metavar="LAT,LON", help="a location instead of text")
    p.add_argument(
        "--directory", metavar="FILE", help="use this directory file instead of the database"
    )
    p.set_defaults(handler=_locate_run)


def _parse_point(value: str) -> tuple[float, float]:
    try:
        lat_s, lon_s = value.replace("，", ",").split(",")
        lat, lon = float(lat_s), float(lon_s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--point wants LAT,LON, not {value!r}") from None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise argparse.ArgumentTypeError(f"not a location: {value!r}")
    return lat, lon


def _locate_run(args: argparse.Namespace) -> int:
    from bot.routing.directory import DirectoryError, load_directory_file
    from bot.routing.locator import Locator, get_locator

    if (args.text is None) == (args.point is None):
        print("give either TEXT or --point LAT,LON", file=sys.stderr)
        return 2
    try:
        point = _parse_point(args.point) if args.point is not None else None
    except argparse.ArgumentTypeError as exc:
        print(exc, file=sys.stderr)
        return 2

    if args.directory:
        try:
            locator = Locator.from_directory(load_directory_file(args.directory))
        except DirectoryError as exc:
            return _refused(exc)
    else:
        locator = _in_transaction(args, get_locator, readonly=True)
    located = locator.locate_point(*point) if point else locator.locate_text(args.text)
    print(json.dumps(located.as_dict(), ensure_ascii=False))
    return 0


# -- escalate ----------------------------------------------------------------


@command("escalate", "escalate overdue tickets one level (grid -> community -> street)")
def _escalate(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--every",
        type=float,
        metavar="SECONDS",
        help="keep running, once every SECONDS (default: run once)",
    )
    p.set_defaults(handler=_escalate_run)


def _escalate_run(args: argparse.Namespace) -> int:
    from bot.store.db import session_scope
    from bot.tickets.display import staff_time
    from bot.tickets.service import escalate_overdue

    tz = ZoneInfo(get_settings().timezone)
    engine = _engine(args)
    next_purge = time.monotonic()  # the retention purge rides along, when due
    try:
        while True:
            try:
                with session_scope(engine) as session:
                    done = escalate_overdue(session)
            except OperationalError as exc:
                # A locked or unreachable database must not stop the periodic
                # task: the overdue tickets are still overdue next round.
                if not args.every:
                    raise
                print(f"escalation round skipped: {exc.orig or exc}", file=sys.stderr)
                done = []
            if not done and not args.every:
                print("没有超时工单 / nothing overdue")
            for e in done:
                due = staff_time(e.due_at, tz)
                print(f"{e.number}: {e.from_level} -> {e.to_level} ({e.reason}; 新时限 {due})")
            if args.every:
                next_purge = _purge_when_due(next_purge)
            sys.stdout.flush()
            if not args.every:
                return 0
            time.sleep(args.every)
    except KeyboardInterrupt:
        return 0
    finally:
        engine.dispose()


def _purge_when_due(due: float) -> float:
    """Run the retention purge (bot.privacy.retention) if `due`; the next due time."""
    interval = get_settings().retention_purge_interval_seconds
    if interval <= 0 or time.monotonic() < due:
        return due
    from bot.privacy.cli import run_periodic_purge

    try:
        print(run_periodic_purge())
    except OperationalError as exc:  # as for escalation: try again next time
        print(f"retention purge skipped: {exc.orig or exc}", file=sys.stderr)
    return time.monotonic() + interval


# -- conversation-log ----------------------------------------------------------


@command(
    "conversation-log",
    "write the conversation log from Rasa's event stream in Redis (several Rasa servers)",
)
def _conversation_log(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--once", action="store_true", help="write what is waiting, then stop (default: keep on)"
    )
    p.add_argument("--stream", help="the Redis stream (default: the endpoints files' one)")
    p.set_defaults(handler=_conversation_log_run)


def _conversation_log_run(args: argparse.Namespace) -> int:
    import signal

    from bot.conversation_stream import DEFAULT_STREAM, ConversationLogWriter, redis_client

    settings = get_settings()
    if not settings.redis_url:
        print("REDIS_URL is not set: the event stream lives in Redis", file=sys.stderr)
        return 2
    writer = ConversationLogWriter(
        redis_client(settings.redis_url),
        settings.tracker_database_url,
        stream=args.stream or DEFAULT_STREAM,
    )
    if args.once:
        print(f"{writer.drain()} events written")
        return 0
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    try:
        writer.run(should_stop=lambda: bool(stopping))
    except KeyboardInterrupt:
        pass
    return 0


# -- db ----------------------------------------------------------------------


@command("db", "database schema")
def _db(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    up = sub.add_parser("upgrade", help="migrate the database to the newest schema")
    up.set_defaults(handler=_db_upgrade)


def _db_upgrade(args: argparse.Namespace) -> int:
    engine = _engine(args)
    engine.dispose()
    print(f"database at head: {engine.url.render_as_string(hide_password=True)}")
    return 0


# -- demo-load ---------------------------------------------------------------


@command("demo-load", "load the demo grid directory if the database has no communities")
def _demo_load(p: argparse.ArgumentParser) -> None:
    p.add_argument("--file", help="directory file (default: GRID_DIRECTORY setting)")
    p.set_defaults(handler=_demo_load_run)


def _demo_load_run(args: argparse.Namespace) -> int:
    from bot.routing.directory import DirectoryError, apply_directory, load_directory_file
    from bot.store.models import Community

    path = args.file or str(get_settings().grid_directory_path)

    def load(session: Session) -> list | None:
        if session.execute(select(func.count(Community.id))).scalar_one():
            return None
        return apply_directory(session, load_directory_file(path))

    try:
        changes = _in_transaction(args, load)
    except DirectoryError as exc:
        return _refused(exc)
    if changes is None:
        print("directory already loaded; demo not loaded")
        return 0
    print(f"loaded demo directory {path}")
    _print_changes(changes)
    return 0


# -- apikeys ------------------------------------------------------------------


@command("apikeys", "API keys of other systems posting Open311 requests")
def _apikeys(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="apikeys_command", metavar="ACTION", required=True)
    create = sub.add_parser("create", help="create a key (printed once; only its hash is kept)")
    create.add_argument("name", help="the system that will use it, e.g. 12345热线")
    create.add_argument("--by", help="who creates it (recorded)")
    create.add_argument(
        "--scope",
        action="append",
        choices=("read", "write"),
        help="write: post requests (default); read: full Open311 records, each read "
        "recorded (repeat for both)",
    )
    create.set_defaults(handler=_apikeys_create)
    listing = sub.add_parser("list", help="list keys (prefix, name, state, last use)")
    listing.set_defaults(handler=_apikeys_list)
    revoke = sub.add_parser("revoke", help="revoke the key with this prefix")
    revoke.add_argument("prefix")
    revoke.set_defaults(handler=_apikeys_revoke)


def _apikeys_create(args: argparse.Namespace) -> int:
    from bot.apikeys import create_key

    try:
        key = _in_transaction(
            args,
            lambda s: create_key(
                s, args.name, created_by=args.by or "cli", scopes=args.scope or ("write",)
            ),
        )
    except ValueError as exc:
        return _refused(exc)
    scopes = "+".join(key.scopes)
    print(f"created API key {key.prefix} ({key.name}, {scopes}); it is shown only this once:")
    print(key.token)
    return 0


def _apikeys_list(args: argparse.Namespace) -> int:
    from bot.apikeys import list_keys

    tz = ZoneInfo(get_settings().timezone)
    keys = _in_transaction(args, list_keys, readonly=True)
    if not keys:
        print("no API keys (create one: python -m bot apikeys create NAME)")
    for k in keys:
        used = k.last_used_at.astimezone(tz).strftime("%Y-%m-%d %H:%M") if k.last_used_at else "-"
        created = k.created_at.astimezone(tz).strftime("%Y-%m-%d %H:%M")
        state = "active" if k.active else "revoked"
        scopes = "+".join(k.scopes)
        print(f"{k.prefix}  {state:7}  {scopes:10}  created {created}  last used {used}  {k.name}")
    return 0


def _apikeys_revoke(args: argparse.Namespace) -> int:
    from bot.apikeys import revoke_key

    try:
        key = _in_transaction(args, lambda session: revoke_key(session, args.prefix))
    except LookupError as exc:
        return _refused(exc, code=1)
    print(f"revoked API key {key.prefix} ({key.name})")
    return 0


# -- web ---------------------------------------------------------------------


@command("web", "serve the web app (workers, admins, Open311, simulator) on WEB_PORT")
def _web(p: argparse.ArgumentParser) -> None:
    p.set_defaults(handler=_web_run)


def _web_run(args: argparse.Namespace) -> int:
    from bot.web.app import run

    run()
    return 0


# -- workers -------------------------------------------------------------------


@command("workers", "web app accounts: passwords, admins, list")
def _workers(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="workers_command", metavar="ACTION", required=True)
    pw = sub.add_parser("set-password", help="set a worker's web password (ends their sessions)")
    pw.add_argument("phone")
    pw.add_argument(
        "--password", help="the new password (default: asked for, or generated and printed)"
    )
    pw.set_defaults(handler=_workers_set_password)
    ls = sub.add_parser("list", help="list workers with role, community, grids")
    ls.set_defaults(handler=_workers_list)
    add = sub.add_parser("add-admin", help="add an admin account")
    add.add_argument("name")
    add.add_argument("phone")
    add.add_argument(
        "--password", help="the password (default: asked for, or generated and printed)"
    )
    add.set_defaults(handler=_workers_add_admin)


def _new_password(given: str | None) -> tuple[str, bool]:
    """(password, generated): --password, else asked on a terminal, else generated."""
    import getpass

    from bot.accounts import generate_password

    if given:
        return given, False
    if sys.stdin.isatty():
        first = getpass.getpass("新密码 / new password: ")
        if first != getpass.getpass("再输入一次 / again: "):
            raise ValueError("两次输入的密码不一致 / the passwords differ")
        return first, False
    return generate_password(), True


def _with_new_password(args: argparse.Namespace, work: Callable[[Session, str], str]) -> int:
    """Run `work(session, password)` with the password of --password (or asked for, or
    generated); print what it returns, and the password when it was generated."""
    try:
        password, generated = _new_password(args.password)
        done = _in_transaction(args, lambda session: work(session, password))
    except (LookupError, ValueError) as exc:
        return _refused(exc)
    print(done + (f" 密码 {password}" if generated else ""))
    return 0


def _workers_set_password(args: argparse.Namespace) -> int:
    from bot.accounts import set_password

    def work(session: Session, password: str) -> str:
        worker = set_password(session, args.phone, password)
        return f"已为{worker.name}（{args.phone}）设置密码"

    return _with_new_password(args, work)


def _workers_add_admin(args: argparse.Namespace) -> int:
    from bot.accounts import add_person

    def work(session: Session, password: str) -> str:
        add_person(session, args.name, args.phone, "admin", password=password)
        return f"已添加管理员{args.name}，账号 {args.phone}"

    return _with_new_password(args, work)


def _workers_list(args: argparse.Namespace) -> int:
    from bot.accounts import list_workers
    from bot.tickets.display import role_label

    rows = _in_transaction(args, list_workers, readonly=True)
    if not rows:
        print("还没有工作人员 / no workers")
        return 0
    for w in rows:
        flags = []
        if not w.active:
            flags.append("已停用")
        if not w.has_password:
            flags.append("未设密码")
        print(
            "\t".join(
                [
                    str(w.id),
                    w.name,
                    w.phone or "-",
                    role_label(w.role),
                    w.community or "-",
                    ",".join(w.grids) or "-",
                    " ".join(flags),
                ]
            ).rstrip()
        )
    return 0


# -- nlu -----------------------------------------------------------------------
# One command group for the NLU data and models: `python -m bot nlu ACTION`.
# Training actions (retrain, evaluate, deploy, rollback, models) live in
# bot/training/cli.py; add further actions (export ...) to this group.


@command("nlu", "NLU training data and models: export, retrain, evaluate, deploy, rollback, models")
def _nlu(p: argparse.ArgumentParser) -> None:
    from bot.training.cli import add_actions as add_training_actions

    sub = p.add_subparsers(dest="nlu_command", metavar="ACTION", required=True)
    _nlu_export_action(sub)
    add_training_actions(sub)


def _nlu_export_action(sub: argparse._SubParsersAction) -> None:
    export = sub.add_parser(
        "export",
        help="write the review inbox's reviewed examples to data/nlu/reviewed.yml",
        description="Write every confirmed, relabelled or out-of-scope group of the review "
        "inbox (/admin/review) as a training example, in Rasa's YAML, deduplicated against "
        "the other files of the NLU data folder and the held-out messages. The file is "
        "regenerated each time; exporting again changes nothing.",
    )
    export.add_argument(
        "--out", metavar="FILE", help="the file to write (default: NLU_DATA_DIR/reviewed.yml)"
    )
    export.add_argument(
        "--nlu-dir", metavar="DIR", help="the NLU data folder (default: NLU_DATA_DIR, data/nlu)"
    )
    export.set_defaults(handler=_nlu_export)


def _nlu_export(args: argparse.Namespace) -> int:
    from bot.review.export import SKIP_REASONS, export_reviewed
    from bot.training.evaluation import HARD_SET_GLOB

    settings = get_settings()
    engine = _engine(args)
    try:
        result = export_reviewed(
            engine,
            args.nlu_dir or settings.nlu_data_dir,
            [settings.nlu_holdout_glob, HARD_SET_GLOB],
            out=args.out,
        )
    finally:
        engine.dispose()
    state = "written" if result.changed else "unchanged"
    print(
        f"{result.path}: {result.total} examples ({state}; {result.added} new, "
        f"{result.removed} removed, {result.skipped} skipped)"
    )
    for intent, count in result.by_intent.items():
        print(f"  {intent}: {count}")
    for reason, count in sorted(result.skipped_by_reason.items()):
        print(f"  skipped {count}: {SKIP_REASONS.get(reason, reason)} ({reason})")
    return 0
