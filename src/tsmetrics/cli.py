"""Command line: ``tsmetrics db upgrade``, ``tsmetrics simulate``, ``tsmetrics demo``,
``tsmetrics gold load FILE``."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from tsmetrics.settings import Settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tsmetrics", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    db = commands.add_parser("db", help="warehouse schema")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    db_commands.add_parser("upgrade", help="apply pending migrations")

    sim = commands.add_parser("simulate", help="write simulated daily log files and truth")
    sim.add_argument("--days", type=int, default=3)
    sim.add_argument("--seed", type=int, default=7)
    sim.add_argument(
        "--start",
        type=date.fromisoformat,
        default=None,
        help="first day (default: DAYS days before today, UTC)",
    )
    sim.add_argument(
        "--out",
        type=Path,
        default=None,
        help="folder for raw/ and truth/ (default: $TSMETRICS_HOME/data)",
    )

    gold = commands.add_parser("gold", help="SME gold set (tsm.gold_items)")
    gold_commands = gold.add_subparsers(dest="gold_command", required=True)
    gold_load = gold_commands.add_parser("load", help="validate a JSONL gold file and upsert it")
    gold_load.add_argument("file", type=Path)

    demo = commands.add_parser("demo", help="simulate days and run the daily DAG for each")
    demo.add_argument("--days", type=int, default=3)
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--start", type=date.fromisoformat, default=None)
    demo.add_argument("--project-dir", type=Path, default=Path.cwd())
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = Settings.from_env()
    if args.command == "db":
        from tsmetrics.db.embedded import resolve_database_url
        from tsmetrics.db.migrate import upgrade

        applied = upgrade(resolve_database_url(settings.home / "pgdata"))
        print(f"applied {len(applied)} migration(s): {[m.name for m in applied]}")
    elif args.command == "simulate":
        from tsmetrics.simulate import simulate

        out = args.out or settings.home / "data"
        start = args.start or datetime.now(UTC).date() - timedelta(days=args.days)
        days = simulate(
            days=args.days,
            seed=args.seed,
            start=start,
            raw_dir=out / "raw",
            truth_dir=out / "truth",
        )
        print(f"simulated {len(days)} day(s) {days[0]}..{days[-1]} into {out}")
    elif args.command == "gold":
        import psycopg

        from tsmetrics.config import load_config
        from tsmetrics.db.embedded import resolve_database_url
        from tsmetrics.gold import load_gold_file

        policies = {p.name: p.sub_policies for p in load_config().policies}
        with psycopg.connect(resolve_database_url(settings.home / "pgdata")) as conn:
            changed = load_gold_file(conn, args.file, policies)
        print(f"gold set {args.file}: {changed} item(s) new or changed")
    elif args.command == "demo":
        from tsmetrics.demo import run_demo

        print(run_demo(args.days, args.seed, args.project_dir.resolve(), args.start))
    return 0


if __name__ == "__main__":
    sys.exit(main())
