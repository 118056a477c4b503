"""The ``msc`` command line: ``msc run`` runs an experiment and prints its summary tables."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import time
from typing import Sequence

from benchmarks.run import RunConfig


def _add_run_args(p: argparse.ArgumentParser) -> None:
    d = RunConfig()
    p.add_argument("--methods", default=",".join(d.methods),
                   help="comma-separated agents: vanilla, oracle, or module:Class (default: %(default)s)")
    p.add_argument("--profiles", default=d.profiles,
                   help="profile set: msc, complex, complex-<k>, or a .jsonl/.json file (default: %(default)s)")
    p.add_argument("--users", type=int, default=d.n_users, help="first N users of the set (default: %(default)s; 0 = all)")
    p.add_argument("--sessions", type=int, default=d.sessions, help="sessions per user (default: %(default)s)")
    p.add_argument("--datasets", default=d.datasets, help="comma-separated datasets (default: %(default)s)")
    p.add_argument("--data-dir", default=None, help="folder of MultiSessionCollab *_test20.json caches")
    p.add_argument("--max-turns", type=int, default=d.max_turns, help="user turns per session (default: %(default)s)")
    p.add_argument("--feedback", default=d.feedback, help="reward classifier: oracle or keyword (default: %(default)s)")
    p.add_argument("--agent-model", default=d.agent_model, help="agents' chat backend spec (default: %(default)s)")
    p.add_argument("--seed", type=int, default=d.seed, help="seed (default: %(default)s)")
    p.add_argument("--out", default=None, help="output folder (default: runs/<profiles>-<time>)")
    p.add_argument("--by-session", action="store_true", help="also print the table per session index")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def cmd_run(args: argparse.Namespace) -> int:
    from benchmarks.report import format_table, summarize
    from benchmarks.run import run

    out = args.out or f"runs/{args.profiles.replace('/', '_')}-{time.strftime('%Y%m%d-%H%M%S')}"
    cfg = RunConfig(methods=[m.strip() for m in args.methods.split(",") if m.strip()], profiles=args.profiles,
                    n_users=args.users or None, sessions=args.sessions, datasets=args.datasets,
                    data_dir=args.data_dir, max_turns=args.max_turns, feedback=args.feedback,
                    agent_model=args.agent_model, seed=args.seed, out=out, progress=not args.no_progress)
    t0 = time.perf_counter()
    rows = run(cfg)
    dt = time.perf_counter() - t0
    errors = sum(1 for r in rows if r["status"] != "ok")
    sim = " (simulated: embedded scripted agent model)" if cfg.agent_model.startswith("scripted") else ""
    print(f"\n{len(rows)} sessions in {dt:.1f}s{sim}; {errors} errors; results in {out}/\n")
    print(format_table(summarize(rows)))
    if args.by_session:
        print()
        print(format_table(summarize(rows, by_session=True), by_session=True))
    return 1 if errors else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="msc", description="MultiSessionCollab-v0 benchmark tools")
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="run methods x users x sessions and print the summary table")
    _add_run_args(p_run)
    p_run.set_defaults(func=cmd_run)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except (ValueError, TypeError, FileNotFoundError) as e:
        print(f"msc: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
