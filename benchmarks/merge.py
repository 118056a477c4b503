"""Join the shards of a run (``msc run --shard i/N --out RUN/shards/i``) into the run folder RUN.

The merged folder is an ordinary run folder, with the same rows an unsharded run would have written:
``sessions.jsonl`` (in method, user and session order), the lane checkpoints under ``lanes/`` (so
``msc run --resume --out RUN`` can finish lanes a shard left unfinished), the TensorBoard curves, and
``metadata.json`` with the shards' common configuration and identity. Shards made with another
version or configuration than the first one are refused, in one line naming the difference.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from benchmarks import checkpoint
from benchmarks.identity import difference

logger = logging.getLogger(__name__)


def _read_rows(path: Path) -> list[dict[str, Any]]:
    rows = []
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut by a killed job: its checkpoint has the row
                continue
    return rows


def merge_shards(run_dir: str | Path) -> dict[str, Any]:
    """Merge ``run_dir/shards/*`` into ``run_dir`` (see module docstring); returns the merged metadata,
    whose ``unfinished`` lists the lanes with fewer sessions than the run asks for."""
    run_dir = Path(run_dir)
    shard_dirs = sorted((p for p in (run_dir / "shards").glob("*") if (p / "metadata.json").exists()),
                        key=lambda p: int(p.name) if p.name.isdigit() else p.name)
    if not shard_dirs:
        raise FileNotFoundError(f"no shards with a metadata.json under {run_dir / 'shards'}; run the shards first "
                                f"(msc slurm submit, or msc run --shard i/N --out {run_dir}/shards/i)")
    metas = [json.loads((p / "metadata.json").read_text()) for p in shard_dirs]
    first = metas[0]
    n = {str(m["config"].get("shard", "")).partition("/")[2] for m in metas}
    if len(n) != 1:
        raise ValueError(f"the shards under {run_dir / 'shards'} split the run in different ways: {sorted(n)}")
    for p, m in zip(shard_dirs[1:], metas[1:]):
        diff = difference(first["identity"], m["identity"])
        if diff or m["config"]["sessions"] != first["config"]["sessions"]:
            raise ValueError(f"cannot merge shard {p} with {shard_dirs[0]}: "
                             f"{diff or 'it runs another number of sessions'}")
    methods, users = first["config"]["methods"], first["user_ids"]
    order_m, order_u = {m: i for i, m in enumerate(methods)}, {u: i for i, u in enumerate(users)}
    sessions = int(first["config"]["sessions"])

    with checkpoint.RunLock(run_dir):
        found: dict[tuple[str, str], checkpoint.LaneCheckpoint] = {}
        rows: dict[tuple[str, str, int], dict[str, Any]] = {}
        for p in shard_dirs:
            for lane, ck in checkpoint.load_all(p).items():
                if lane in found:
                    raise ValueError(f"lane {lane} is in two shards ({p} and another); the shards overlap")
                found[lane] = ck
                checkpoint.save(run_dir, ck)
            for r in _read_rows(p / "sessions.jsonl"):  # failed sessions are only here
                rows.setdefault((r["method"], r["user_id"], r["session"]), r)
        for ck in found.values():  # finished sessions: the checkpoint is the record
            for r in ck.rows:
                rows[(r["method"], r["user_id"], r["session"])] = r
        merged = sorted(rows.values(), key=lambda r: (order_m.get(r["method"], len(order_m)),
                                                      order_u.get(r["user_id"], len(order_u)), r["session"]))
        tmp = run_dir / "sessions.jsonl.tmp"
        tmp.write_text("".join(json.dumps(r) + "\n" for r in merged), encoding="utf-8")
        tmp.replace(run_dir / "sessions.jsonl")

        from benchmarks.run import llm_totals

        failed = [r for r in merged if r["status"] != "ok"]
        unfinished = [f"{m}/{u}" for m in methods for u in users
                      if (found[(m, u)].sessions_done if (m, u) in found else 0) < sessions]
        config = {**first["config"], "shard": None, "out": str(run_dir)}
        meta = {**{k: v for k, v in first.items() if k not in ("resumed", "seconds", "sessions_run", "sessions_kept")},
                "config": config, "started": min(m.get("started", "") for m in metas),
                "finished": max(m.get("finished", "") for m in metas),
                "merged": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "merged_from": [str(p) for p in shard_dirs],
                "seconds": max(float(m.get("seconds", 0.0)) for m in metas),
                "sessions_run": sum(r["status"] == "ok" for r in merged), "sessions_kept": 0, "errors": len(failed),
                "failures": [{k: r.get(k) for k in ("method", "user_id", "session", "error")} for r in failed],
                "unfinished": unfinished, "llm": llm_totals(merged)}
        tmp = run_dir / "metadata.json.tmp"
        tmp.write_text(json.dumps(meta, indent=2))
        tmp.replace(run_dir / "metadata.json")
        if config.get("tensorboard", True):
            try:
                from benchmarks.tensorboard import RunCurves

                curves = RunCurves(run_dir, methods, len(users))
                for r in merged:
                    curves.add(r)
                curves.close()
            except ImportError as e:
                logger.warning("no TensorBoard curves: %s", e)
    return meta
