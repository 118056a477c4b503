"""The ``msc`` command line: ``msc run`` runs an experiment and prints its summary tables."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from benchmarks.checkpoint import RunLockedError
from benchmarks.run import RunConfig


#: the main job's defaults (``msc run`` with no arguments): the six methods and the oracle on the
#: 43-preference profiles, enough users and sessions to see learning and tell the methods apart
MAIN_JOB = {"methods": "all", "profiles": "complex", "users": 60, "sessions": 10}


def _add_run_args(p: argparse.ArgumentParser) -> None:
    d = RunConfig()
    p.add_argument("--methods", default=MAIN_JOB["methods"],
                   help="comma-separated agents: vanilla, contextual, reflection, all_memory, rag, rag_vector, oracle, "
                        "a module:Class plug-in, or 'all' (the six + oracle) (default: %(default)s)")
    p.add_argument("--world", default="default",
                   help="world preset: default, msc-llama70b, vars-llama8b (personalization_env.worlds): profiles, "
                        "datasets, turn limit, user traits and the scripted model's calibration; explicit flags win "
                        "(default: %(default)s)")
    p.add_argument("--profiles", default=None,
                   help="profile set: msc, complex, complex-<k>, or a .jsonl/.json file (default: the world's, else "
                        f"{MAIN_JOB['profiles']})")
    p.add_argument("--users", type=int, default=MAIN_JOB["users"],
                   help="first N users of the set (default: %(default)s; 0 = all)")
    p.add_argument("--sessions", type=int, default=MAIN_JOB["sessions"], help="sessions per user (default: %(default)s)")
    p.add_argument("--datasets", default=None, help=f"comma-separated datasets (default: the world's, else {d.datasets})")
    p.add_argument("--data-dir", default=None, help="folder of MultiSessionCollab *_test20.json caches")
    p.add_argument("--max-turns", type=int, default=None,
                   help=f"user turns per session (default: the world's, else {d.max_turns})")
    p.add_argument("--feedback", default=d.feedback,
                   help="reward classifier: oracle, keyword, llm:<backend spec> or llm_local:<model> (default: %(default)s)")
    p.add_argument("--agent-model", default=d.agent_model,
                   help="agents' chat backend: scripted, openai:<model>@<url>, hf:<path>, vllm:<model> (default: %(default)s)")
    p.add_argument("--user", default=d.user,
                   help="user simulator: rule, llm:<backend spec> or hybrid:<backend spec> (default: %(default)s)")
    p.add_argument("--cache", default=None,
                   help="response-cache folder (default: <out>/cache when a role uses a model server)")
    p.add_argument("--agent-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="constructor argument for the agents that take it, e.g. embedder=server:<model>@<url> or J=5 "
                        "(values parse as JSON when they can; repeatable)")
    p.add_argument("--user-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="constructor argument of the user simulator, e.g. show_profile=false (repeatable)")
    p.add_argument("--user-ids", default=None, metavar="ID,ID",
                   help="only these users of the profile set (default: the first --users)")
    p.add_argument("--transcripts", action="store_true", help="record each session's messages in sessions.jsonl")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out: every (method, user) lane restarts at its first unfinished session")
    p.add_argument("--continue-from", default=None, metavar="RUN",
                   help="extend the finished run in folder RUN to --sessions sessions per user (into --out; "
                        "default: RUN itself); the result equals a longer run from scratch")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a run already in --out (its response cache, <out>/cache, is kept and reused)")
    p.add_argument("--allow-code-change", action="store_true",
                   help="with --resume/--continue-from: accept a run made at another git revision of this package")
    p.add_argument("--replay", action="store_true", help="answer every model call from --cache (no model calls)")
    p.add_argument("--seed", type=int, default=d.seed, help="seed (default: %(default)s)")
    p.add_argument("--out", default=None, help="output folder (default: runs/<profiles>-<time>)")
    p.add_argument("--workers", type=int, default=0,
                   help="worker processes (default 0: one per CPU core, up to 8, on the CPU-bound embedded world; "
                        "1 when a role uses a model server, where lanes keep the servers busy)")
    p.add_argument("--lanes", type=int, default=None,
                   help="(method, user) lanes in flight per worker; with model servers many lanes keep them busy "
                        "(default: 1 on the embedded world, up to 256 when a role uses a model server)")
    p.add_argument("--session-timeout", type=float, default=None, metavar="S",
                   help="a session running longer than S seconds is recorded as failed (default: no limit)")
    p.add_argument("--call-timeout", type=float, default=None, metavar="S",
                   help="seconds per model request attempt (default: $MSC_LLM_TIMEOUT or 120)")
    p.add_argument("--by-session", action="store_true", help="also print the table per session index")
    p.add_argument("--summary-only", action="store_true", help=argparse.SUPPRESS)  # the default now; kept for scripts
    p.add_argument("--no-report", action="store_true",
                   help="do not write <out>/report (summary.md/.csv/.json and learning-curve plots)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--no-tensorboard", action="store_true",
                   help="do not write TensorBoard curves (default: <out>/tensorboard, one run per method)")
    p.add_argument("--shard", default=None, metavar="I/N",
                   help="run only the I-th of N blocks of the (method, user) lanes (msc merge joins them)")
    p.add_argument("--wait-for-servers", type=float, default=0.0, metavar="S",
                   help="wait up to S seconds for model servers that are still starting (default: 0)")


def key_values(pairs: list[str], flag: str) -> dict[str, Any]:
    """``KEY=VALUE`` strings as a dict; values parse as JSON when they can (numbers, true/false, lists)."""
    out: dict[str, Any] = {}
    for kv in pairs:
        k, sep, v = kv.partition("=")
        if not sep or not k.strip():
            raise ValueError(f"{flag} takes KEY=VALUE, got {kv!r}")
        try:
            out[k.strip()] = json.loads(v)
        except json.JSONDecodeError:
            out[k.strip()] = v.strip()
    return out


def _names(csv: str | None) -> list[str] | None:
    return [x.strip() for x in csv.split(",") if x.strip()] if csv else None


def cmd_run(args: argparse.Namespace) -> int:
    from benchmarks.run import llm_totals, run, uses_models
    from personalization_env.llm.base import BackendUnavailableError

    if args.resume and not args.out:
        raise ValueError("--resume needs the folder of the run to continue: --out <folder>")
    if args.out is None and args.continue_from:
        args.out = args.continue_from  # extend in place
    if args.profiles is None:
        from personalization_env.worlds import get_world

        args.profiles = get_world(args.world).profiles_spec(args.data_dir) or MAIN_JOB["profiles"]
    out = args.out or f"runs/{args.profiles.replace('/', '_')}-{time.strftime('%Y%m%d-%H%M%S')}"
    cfg = RunConfig(methods=[m.strip() for m in args.methods.split(",") if m.strip()], profiles=args.profiles,
                    n_users=args.users or None, sessions=args.sessions, datasets=args.datasets,
                    data_dir=args.data_dir, max_turns=args.max_turns, feedback=args.feedback,
                    agent_model=args.agent_model, seed=args.seed, out=out, progress=not args.no_progress,
                    workers=args.workers or 1, user=args.user, cache=args.cache, resume=args.resume, replay=args.replay,
                    agent_args=key_values(args.agent_arg, "--agent-arg"), user_args=key_values(args.user_arg, "--user-arg"),
                    user_ids=_names(args.user_ids), transcripts=args.transcripts,
                    lanes=args.lanes, session_timeout=args.session_timeout,
                    call_timeout=args.call_timeout, continue_from=args.continue_from, overwrite=args.overwrite,
                    allow_code_change=args.allow_code_change, tensorboard=not args.no_tensorboard,
                    shard=args.shard, wait_for_servers=args.wait_for_servers, world=args.world)
    if args.workers == 0:
        cfg.workers = 1 if uses_models(cfg) else max(1, min(os.cpu_count() or 1, 8))
    try:
        rows = run(cfg)
    except BackendUnavailableError as e:
        print(f"msc: stopped: {e}. Finished sessions are in {out}/; continue with: msc run ... --out {out} --resume",
              file=sys.stderr)
        return 3
    meta = json.loads((Path(out) / "metadata.json").read_text())
    failures = meta.get("failures", [])
    sim = " (simulated: embedded scripted agent model)" if cfg.agent_model.startswith("scripted") else ""
    kept = f", {meta['sessions_kept']} kept from before" if meta.get("sessions_kept") else ""
    print(f"\n{meta['sessions_run']} sessions run in {meta['seconds']:.1f}s{kept}{sim}; {len(failures)} failed; "
          f"results in {out}/\n")
    llm = llm_totals(rows)
    for role, t in llm.items():
        if role == "sim_checker":
            print(f"user simulator vs checkers: agreement {t['agreement']} over {t['turns']} turns; "
                  f"enforced checkable preferences confirmed violated: {t['enforced_confirmed']}")
        else:
            print(f"{role} model: {t.get('calls', 0)} calls ({t.get('cache_hits', 0)} from cache), {t.get('tokens', 0)} "
                  f"tokens, {t.get('retries', 0)} retries, {t.get('repairs', 0)} JSON repairs, faults {t['faults'] or 'none'}")
    print_report(rows, by_session=args.by_session, methods=cfg.methods, max_turns=cfg.max_turns)
    report = None
    if not args.no_report:
        from benchmarks.report import write_report

        try:
            report = write_report([out], Path(out) / "report", from_session=cfg.sessions // 2)
        except ImportError as e:  # no matplotlib: the tables still go to the report folder
            print(f"(no plots: {e})", file=sys.stderr)
            report = write_report([out], Path(out) / "report", from_session=cfg.sessions // 2, plots=False)
    from benchmarks.story import closing_summary

    story = closing_summary(rows, cfg.methods, cfg.sessions, out, report=report, tensorboard=cfg.tensorboard)
    if story:
        print(f"\n{story}")
    if failures:
        print(f"\n{len(failures)} session(s) failed; their lanes stopped there (msc run ... --out {out} --resume "
              f"retries them):", file=sys.stderr)
        for f in failures[:20]:
            print(f"  {f['method']} / {f['user_id']} / session {f['session']}: {f['error']}", file=sys.stderr)
        if len(failures) > 20:
            print(f"  ... and {len(failures) - 20} more (metadata.json lists them all)", file=sys.stderr)
    return 1 if failures else 0


def print_report(rows: list, by_session: bool = False, compare: list[str] | None = None, from_session: int = 0,
                 methods: list[str] | None = None, max_turns: int | None = None) -> None:
    """Summary table, optional per-session table, paired tests and the user-vector change rate."""
    from benchmarks.report import format_table, resolve_pairs, summarize, vector_change_rate
    from benchmarks.stats import compare_methods

    methods = methods or list(dict.fromkeys(r["method"] for r in rows))
    pairs = resolve_pairs(compare, methods) if compare else []  # bad names fail before anything is printed
    print(format_table(summarize(rows, methods=methods, max_turns=max_turns)))
    if by_session:
        print()
        print(format_table(summarize(rows, by_session=True, methods=methods, max_turns=max_turns), by_session=True))
    if not pairs and "rag_vector" in methods and "rag" in methods:
        pairs = [("rag_vector", "rag")]
    for a, b in pairs:
        res = compare_methods(rows, a, b, "user_effort", from_session)
        print(f"\npaired over {res['n']} users, user effort {a} - {b}: {res['mean_diff']:+.3f} "
              f"(95% CI ±{res['ci95']:.3f}, t = {res['t']:.2f}, permutation p = {res['p']:.4f})")
    if "rag_vector" in methods:
        cr = vector_change_rate(rows)
        print(f"rag_vector: the user vector changed the chosen top-J set in {cr['changed']} of {cr['turns']} "
              f"retrieval turns ({100 * cr['change_rate']:.1f} %); {cr['updates']} REINFORCE updates")


def cmd_report(args: argparse.Namespace) -> int:
    from benchmarks.report import load_runs, method_order, write_report

    rows, metas = load_runs(args.run_dirs)
    print_report(rows, by_session=args.by_session, compare=args.compare, from_session=args.from_session,
                 methods=method_order(rows, metas), max_turns=metas[0].get("config", {}).get("max_turns"))
    if args.out:
        res = write_report(args.run_dirs, args.out, compare=args.compare, from_session=args.from_session,
                           plots=not args.no_plots)
        print(f"\nwrote {res['summary_md']}, {res['summary_csv'].name}, {res['summary_json'].name}"
              + (f" and {len(res['plots'])} learning curves (curve_<metric>.png)" if res["plots"] else ""))
    return 0


def cmd_play(args: argparse.Namespace) -> int:
    """A person plays the user against an agent; the sessions are saved as a run (with transcripts)."""
    from benchmarks.run import run
    from personalization_env.profiles import load_profiles

    profiles = load_profiles(args.profiles)
    user = args.user_id or profiles[0].user_id
    out = args.out or f"runs/play-{time.strftime('%Y%m%d-%H%M%S')}"
    cfg = RunConfig(methods=[args.agent], profiles=args.profiles, n_users=None, user_ids=[user],
                    sessions=args.sessions, agent_model=args.agent_model, agent_args=key_values(args.agent_arg, "--agent-arg"),
                    user="human", user_args={"show_profile": not args.hide_profile}, feedback="oracle", seed=args.seed,
                    out=out, progress=False, tensorboard=False, transcripts=True, lanes=1, workers=1, resume=True)
    print(f"You are user {user} of the '{args.profiles}' profiles; the assistant is {args.agent} "
          f"({args.agent_model}). Sessions are saved in {out}/ (run the same command to continue).")
    rows = run(cfg)
    for r in rows:
        if r["status"] == "ok":
            print(f"session {r['session']}: success {r['task_success']:.0f}, your effort {r['user_effort']:.0f} "
                  f"restating turn(s), {r['turns']:.0f} messages")
        else:
            print(f"session {r['session']}: not finished ({r['error']})")
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    from benchmarks.merge import merge_shards

    meta = merge_shards(args.run_dir)
    print(f"merged {len(meta['merged_from'])} shards into {args.run_dir}: {meta['sessions_run']} sessions, "
          f"{meta['errors']} failed")
    if not args.no_report:
        from benchmarks.report import write_report

        sessions = int(meta["config"]["sessions"])
        try:
            res = write_report([args.run_dir], Path(args.run_dir) / "report", from_session=sessions // 2)
        except ImportError:  # no matplotlib: the tables still
            res = write_report([args.run_dir], Path(args.run_dir) / "report", from_session=sessions // 2, plots=False)
        print(f"report: {res['summary_md']}")
    if meta["unfinished"]:
        print(f"{len(meta['unfinished'])} lane(s) unfinished (e.g. {meta['unfinished'][0]}): resubmit, or finish "
              f"them here with msc run ... --out {args.run_dir} --resume", file=sys.stderr)
        return 1
    return 0


def cmd_slurm_submit(args: argparse.Namespace, run_args: list[str]) -> int:
    from benchmarks.slurm import SlurmOptions, submit

    parser = argparse.ArgumentParser(prog="msc slurm submit (run options)")
    _add_run_args(parser)
    parsed = parser.parse_args(run_args)  # the run's options fail here, before anything is submitted
    if not parsed.out:
        raise ValueError("msc slurm submit needs the run's folder: --out <folder> (shards go to <folder>/shards)")
    forwarded, skip = [], False
    for a in run_args:  # the shards get their own --out
        if skip:
            skip = False
        elif a == "--out":
            skip = True
        elif not a.startswith("--out="):
            forwarded.append(a)
    opts = SlurmOptions(partition=args.partition, account=args.account, time=args.time, gpus=args.gpus,
                        cpus_per_task=args.cpus_per_task, mem=args.mem, after=args.after,
                        wait_for_servers=args.wait_for_servers_s)
    res = submit(forwarded, parsed.out, args.shards, opts, dry_run=args.dry_run)
    if args.dry_run:
        for name in ("shard.sbatch", "merge.sbatch"):
            print(f"# ---- {name}\n{res[name]}")
        print(f"# submitted with: {res['array_command']}, then the merge job with --dependency=afterany:<array job>")
        return 0
    print(f"submitted array job {res['array_job']} ({args.shards} shards) and merge job {res['merge_job']}; "
          f"results in {parsed.out} (logs in {parsed.out}/slurm/)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="msc", description="MultiSessionCollab-v0 benchmark tools")
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="run methods x users x sessions and print the summary table")
    _add_run_args(p_run)
    p_run.set_defaults(func=cmd_run)
    p_rep = sub.add_parser("report", help="tables, paired tests, gap shares and plots of run folders")
    p_rep.add_argument("run_dirs", nargs="+", metavar="RUN",
                       help="folders 'msc run' wrote; several are pooled (same world, no session twice)")
    p_rep.add_argument("--out", default=None, metavar="DIR",
                       help="write summary.md, summary.csv, summary.json and curve_<metric>.png into DIR")
    p_rep.add_argument("--no-plots", action="store_true", help="with --out: skip the PNGs (no matplotlib needed)")
    p_rep.add_argument("--by-session", action="store_true", help="also print the table per session index")
    p_rep.add_argument("--compare", action="append", metavar="A,B",
                       help="paired test of user effort between methods A and B (repeatable)")
    p_rep.add_argument("--from-session", type=int, default=0, help="only sessions >= this index in paired tests")
    p_rep.set_defaults(func=cmd_report)
    p_play = sub.add_parser("play", help="be the user yourself, in this terminal, against an agent",
                            description="You type the user's messages (with the task and, unless --hide-profile, "
                                        "the preferences of a profile to act out); the sessions are saved like "
                                        "any run, with transcripts and your labels.")
    p_play.add_argument("--agent", default="all_memory", help="the agent (any msc run method; default: %(default)s)")
    p_play.add_argument("--agent-model", default="scripted", help="the agent's backend spec (default: %(default)s)")
    p_play.add_argument("--agent-arg", action="append", default=[], metavar="KEY=VALUE")
    p_play.add_argument("--profiles", default="msc", help="profile set (default: %(default)s)")
    p_play.add_argument("--user-id", default=None, help="the profile you play (default: the set's first)")
    p_play.add_argument("--hide-profile", action="store_true", help="play as yourself: no preferences shown")
    p_play.add_argument("--sessions", type=int, default=1, help="sessions (default: %(default)s)")
    p_play.add_argument("--seed", type=int, default=0)
    p_play.add_argument("--out", default=None, help="output folder (default: runs/play-<time>)")
    p_play.set_defaults(func=cmd_play)
    sub.add_parser("serve", add_help=False,
                   help="serve the env over the OpenEnv protocol (HTTP + WebSocket) for RL trainers")
    p_merge = sub.add_parser("merge", help="join the shards of a sharded run (RUN/shards/*) into RUN")
    p_merge.add_argument("run_dir", help="the run folder whose shards/ to merge")
    p_merge.add_argument("--no-report", action="store_true", help="do not write <run>/report")
    p_merge.set_defaults(func=cmd_merge)
    p_slurm = sub.add_parser("slurm", help="run on a SLURM cluster")
    slurm_sub = p_slurm.add_subparsers(dest="slurm_command", required=True)
    p_sub = slurm_sub.add_parser(
        "submit", help="a run as a job array of shards plus a merge job; takes every 'msc run' option",
        description="Submit a run as a SLURM array (one shard of the (method, user) lanes per task) and a "
                    "merge job after it. Every other option is an 'msc run' option (--out is required).")
    p_sub.add_argument("--shards", type=int, required=True, help="array tasks (blocks of lanes)")
    for flag, help_ in (("--partition", "partition (default: $SBATCH_PARTITION or the cluster's)"),
                        ("--account", "account (default: $SBATCH_ACCOUNT)"),
                        ("--time", "time limit per shard, e.g. 04:00:00 (default: $SBATCH_TIMELIMIT)"),
                        ("--gpus", "GPUs per shard (default: none; $SBATCH_GPUS)"),
                        ("--mem", "memory per shard, e.g. 8G (default: $SBATCH_MEM_PER_NODE or the cluster's)")):
        p_sub.add_argument(flag, default=None, help=help_)
    p_sub.add_argument("--cpus-per-task", type=int, default=None, help="CPUs per shard (default: $SBATCH_CPUS_PER_TASK)")
    p_sub.add_argument("--after", default=None, metavar="JOBID",
                       help="start the shards after this job has started (a slurm/serve_*.sbatch job)")
    p_sub.add_argument("--wait-for-servers-s", type=float, default=3600.0, metavar="S",
                       help="with model servers, how long each shard waits for them (default: %(default)s)")
    p_sub.add_argument("--dry-run", action="store_true", help="print the batch scripts, submit nothing")
    p_sub.set_defaults(func=None)
    args, extra = parser.parse_known_args(argv)
    if args.command == "serve":  # its own options and help (personalization_env.serve)
        from personalization_env.serve import serve_main

        return serve_main(extra)
    if getattr(args, "slurm_command", None) == "submit":
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
        try:
            return cmd_slurm_submit(args, extra)
        except (ValueError, FileNotFoundError, RuntimeError) as e:
            print(f"msc: error: {e}", file=sys.stderr)
            return 2
        except SystemExit as e:  # a bad run option: argparse said why
            return int(e.code or 2)
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (ValueError, TypeError, FileNotFoundError, FileExistsError, RunLockedError, ImportError) as e:
        print(f"msc: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
