"""``msc slurm submit``: a run as a SLURM job array, one shard a task, and a merge job after it.

The (method, user) lanes are cut into ``shards`` contiguous blocks (:func:`benchmarks.run.shard_lanes`).
Task ``i`` of the array runs ``msc run <the run's arguments> --shard i/N --out RUN/shards/i --resume``
(so a requeued or resubmitted task continues where it stopped), and a merge job that depends on the
whole array runs ``msc merge RUN``, which writes RUN as an unsharded run would have, with its report
(and exits 1 when some lane is unfinished: resubmit, or ``msc run ... --out RUN --resume`` finishes it).

Scheduling options come from the flags (``--partition``, ``--account``, ``--time``, ``--gpus``,
``--cpus-per-task``, ``--mem``) or, where a flag is not given, from sbatch's own input variables
(``SBATCH_PARTITION``, ``SBATCH_ACCOUNT``, ``SBATCH_TIMELIMIT``, ...), never from values written here.
Jobs start in the submitting folder with its environment (sbatch's default ``--export=ALL``), and run
this same Python. With model servers (a ``slurm/serve_*.sbatch`` job), ``--after JOBID`` holds the
shards until the serve job has started, and each shard waits for the servers to answer
(``--wait-for-servers``) before its first session.

Why sbatch and not submitit (an extra of this package): a shard is a command line, not a Python
function; sbatch scripts can be read, kept, resubmitted by hand and printed by ``--dry-run``, need no
pickled closure of the CLI state, and need no accounting daemon to notice a killed task (submitit
polls ``sacct`` and waits forever on a SIGKILLed job without ``slurmdbd``).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

SBATCH_FLAGS: tuple[tuple[str, str], ...] = (("partition", "--partition"), ("account", "--account"),
                                             ("time", "--time"), ("gpus", "--gpus"),
                                             ("cpus_per_task", "--cpus-per-task"), ("mem", "--mem"))


@dataclass
class SlurmOptions:
    """sbatch options of the shard jobs (None: not written, so sbatch's SBATCH_* variables apply)."""

    partition: str | None = None
    account: str | None = None
    time: str | None = None
    gpus: str | None = None
    cpus_per_task: int | None = None
    mem: str | None = None
    after: str | None = None
    """a job the shards start after (``--dependency=after:JOBID``), e.g. the model servers' job"""
    wait_for_servers: float = 3600.0
    """seconds each shard waits for model servers to answer"""


def _directives(opts: SlurmOptions, name: str, output: Path) -> list[str]:
    lines = [f"#SBATCH --job-name={name}", f"#SBATCH --output={output}", f"#SBATCH --chdir={Path.cwd()}"]
    for attr, flag in SBATCH_FLAGS:
        v = getattr(opts, attr)
        if v is not None:
            lines.append(f"#SBATCH {flag}={v}")
    return lines


def shard_script(run_args: list[str], out: Path, shards: int, opts: SlurmOptions) -> str:
    """The array job's batch script (task ``$SLURM_ARRAY_TASK_ID`` runs one shard)."""
    args = [sys.executable, "-m", "benchmarks.cli", "run", *run_args]
    if any("@http" in a for a in run_args):
        args += ["--wait-for-servers", f"{opts.wait_for_servers:g}"]
    line = (f"exec {shlex.join(args)} --out {shlex.quote(str(out))}/shards/\"$SLURM_ARRAY_TASK_ID\" "
            f"--shard \"$SLURM_ARRAY_TASK_ID/{shards}\" --resume --no-report")
    return "\n".join(["#!/usr/bin/env bash", *_directives(opts, "msc-shard", out / "slurm" / "shard-%A_%a.out"),
                      "set -euo pipefail", line, ""])


def merge_script(out: Path, opts: SlurmOptions) -> str:
    """The merge job's batch script."""
    merge_opts = SlurmOptions(partition=opts.partition, account=opts.account, time=opts.time)
    cmd = [sys.executable, "-m", "benchmarks.cli", "merge", str(out)]
    return "\n".join(["#!/usr/bin/env bash", *_directives(merge_opts, "msc-merge", out / "slurm" / "merge-%j.out"),
                      "set -euo pipefail", f"exec {shlex.join(cmd)}", ""])


def submit(run_args: list[str], out: str | Path, shards: int, opts: SlurmOptions,
           dry_run: bool = False) -> dict[str, str]:
    """Write the two batch scripts under ``out/slurm/`` and submit them (``dry_run``: only write and
    return them). Returns the scripts and, when submitted, the job ids."""
    if not isinstance(shards, int) or shards < 1:
        raise ValueError(f"shards must be a positive int, got {shards!r}")
    out = Path(out).resolve()
    scripts = {"shard.sbatch": shard_script(run_args, out, shards, opts), "merge.sbatch": merge_script(out, opts)}
    array = ["sbatch", "--parsable", f"--array=0-{shards - 1}"]
    if opts.after:
        array.append(f"--dependency=after:{opts.after}")
    result = {**scripts, "array_command": shlex.join([*array, str(out / "slurm" / "shard.sbatch")])}
    if dry_run:
        return result
    if shutil.which("sbatch") is None:
        raise FileNotFoundError("sbatch is not on PATH: run this on a SLURM login node, or use --dry-run to see "
                                "the scripts")
    (out / "slurm").mkdir(parents=True, exist_ok=True)
    for name, text in scripts.items():
        (out / "slurm" / name).write_text(text)
    array_id = _sbatch([*array, str(out / "slurm" / "shard.sbatch")])
    merge_id = _sbatch(["sbatch", "--parsable", f"--dependency=afterany:{array_id}", str(out / "slurm" / "merge.sbatch")])
    return {**result, "array_job": array_id, "merge_job": merge_id}


def _sbatch(cmd: list[str]) -> str:
    p = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
    if p.returncode != 0:
        raise RuntimeError(f"{shlex.join(cmd)} failed: {p.stderr.strip() or p.stdout.strip()}")
    return p.stdout.strip().split(";")[0]
