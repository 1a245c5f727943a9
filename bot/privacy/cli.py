"""`python -m bot privacy purge [--dry-run]`: the retention purge by hand.

The escalation task (`python -m bot escalate --every ...`, started by `make run`)
runs the same purge every RETENTION_PURGE_INTERVAL_SECONDS.
"""

from __future__ import annotations

import argparse
import sys

from bot.cli import _engine, command
from bot.settings import get_settings


@command("privacy", "residents' personal data: purge what is older than RETENTION_DAYS")
def _privacy(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="privacy_command", metavar="ACTION", required=True)
    purge = sub.add_parser(
        "purge",
        help="remove the conversation log, notices and photos older than the retention "
        "period and anonymise finished tickets; resumable",
    )
    purge.add_argument("--dry-run", action="store_true", help="only show what would go")
    purge.add_argument("--days", type=int, help="retention period (default RETENTION_DAYS)")
    purge.add_argument("--batch", type=int, default=500, help="rows per transaction")
    purge.set_defaults(handler=_purge)


def _purge(args: argparse.Namespace) -> int:
    from bot.privacy.retention import purge

    settings = get_settings()
    days = args.days if args.days is not None else settings.retention_days
    if days < 1 or args.batch < 1:
        print("--days and --batch must be at least 1", file=sys.stderr)
        return 2
    engine = _engine(args)
    try:
        result = purge(
            engine,
            settings.tracker_database_url,
            days=days,
            dry_run=args.dry_run,
            batch=args.batch,
        )
    finally:
        engine.dispose()
    when = result.cutoff.isoformat(timespec="seconds")
    print(f"retention {days} days: older than {when}{' (dry run)' if args.dry_run else ''}")
    for line in result.lines():
        print("  " + line)
    return 0


def run_periodic_purge() -> str:
    """One purge round of the periodic task (its summary line)."""
    from bot.privacy.retention import purge
    from bot.store.db import make_engine

    settings = get_settings()
    engine = make_engine(settings.database_url)
    try:
        result = purge(engine, settings.tracker_database_url, days=settings.retention_days)
    finally:
        engine.dispose()
    done = ", ".join(f"{k} {n}" for k, n in result.counts.items() if n)
    return f"retention purge: {done or 'nothing to remove'}"
