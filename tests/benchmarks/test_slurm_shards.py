"""Sharded runs: shards, msc merge, msc slurm submit (dry run, and a real array on a local cluster),
plain progress lines in batch logs."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks.cli import main
from benchmarks.merge import merge_shards
from benchmarks.progress import Progress
from benchmarks.run import RunConfig, run, shard_lanes

REPO = Path(__file__).resolve().parents[2]
METHODS = ["vanilla", "rag_vector", "oracle"]


def stable(rows):
    return [json.dumps({k: v for k, v in r.items() if k != "seconds"}, sort_keys=True) for r in rows]


def file_rows(path: Path):
    return [json.loads(x) for x in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def unsharded(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref")
    run(RunConfig(methods=METHODS, n_users=5, sessions=3, out=str(out), progress=False))
    return file_rows(out / "sessions.jsonl")


def test_shards_cover_every_lane_once():
    lanes = [(m, u) for m in "abc" for u in "uvwxyz"]
    for n in (1, 2, 4, 7, 18, 25):
        parts = [shard_lanes(list("abc"), list("uvwxyz"), f"{i}/{n}") for i in range(n)]
        assert [x for p in parts for x in p] == lanes  # in order, each once
        assert max(map(len, parts)) - min(map(len, parts)) <= 1
    with pytest.raises(ValueError, match="'i/N'"):
        RunConfig(shard="4/4")


def test_merged_shards_equal_the_unsharded_run(tmp_path, unsharded):
    out = tmp_path / "run"
    for i in range(3):
        run(RunConfig(methods=METHODS, n_users=5, sessions=3, out=str(out / "shards" / str(i)), shard=f"{i}/3",
                      progress=False))
    assert main(["merge", str(out)]) == 0
    assert stable(file_rows(out / "sessions.jsonl")) == stable(unsharded)  # same rows, same order
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["sessions_run"] == len(unsharded) and meta["unfinished"] == [] and meta["config"]["shard"] is None
    # the merged folder is an ordinary run: resume finds every lane finished
    seen = []
    run(RunConfig(methods=METHODS, n_users=5, sessions=3, out=str(out), resume=True, progress=False), on_row=seen.append)
    assert seen == []


def test_merge_reports_unfinished_lanes_and_refuses_mixed_shards(tmp_path, capsys):
    out = tmp_path / "run"
    run(RunConfig(methods=METHODS, n_users=5, sessions=3, out=str(out / "shards" / "0"), shard="0/2", progress=False))
    assert main(["merge", str(out)]) == 1
    assert "lane(s) unfinished" in capsys.readouterr().err
    run(RunConfig(methods=METHODS, n_users=5, sessions=3, seed=1, out=str(out / "shards" / "1"), shard="1/2",
                  progress=False))
    with pytest.raises(ValueError, match="seed=0, this run has seed=1"):
        merge_shards(out)
    with pytest.raises(FileNotFoundError, match="no shards"):
        merge_shards(tmp_path / "empty")


def test_dry_run_prints_the_scripts_with_the_flags_given_and_nothing_else(tmp_path, capsys):
    args = ["slurm", "submit", "--shards", "4", "--methods", "vanilla", "--users", "8", "--out", str(tmp_path / "x"),
            "--dry-run"]
    assert main([*args, "--partition", "gpu", "--account", "lab", "--time", "02:00:00", "--gpus", "1"]) == 0
    out = capsys.readouterr().out
    for line in ("#SBATCH --partition=gpu", "#SBATCH --account=lab", "#SBATCH --time=02:00:00", "#SBATCH --gpus=1",
                 '--shard "$SLURM_ARRAY_TASK_ID/4" --resume --no-report', "--array=0-3", "merge"):
        assert line in out, line
    assert main(args) == 0
    out = capsys.readouterr().out  # no flags: sbatch's SBATCH_* variables decide, nothing is written for them
    assert "--partition" not in out and "--account" not in out and "--time" not in out
    assert not (tmp_path / "x").exists()  # a dry run writes nothing
    assert main(["slurm", "submit", "--shards", "2", "--users", "x", "--out", str(tmp_path / "y"), "--dry-run"]) == 2


def test_plain_progress_lines_in_logs():
    buf = io.StringIO()  # not a terminal: plain lines, no carriage returns
    p = Progress(10, "msc run", "session", enabled=True, every=0.0, stream=buf)
    for _ in range(10):
        p.update()
    p.close()
    lines = buf.getvalue().splitlines()
    assert "\r" not in buf.getvalue() and lines and lines[-1].startswith("msc run: 10/10 sessions (100.0 %)")


def _cluster_up() -> bool:
    if shutil.which("sbatch") is None or shutil.which("sinfo") is None:
        return False
    p = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True)
    return p.returncode == 0 and "idle" in p.stdout


@pytest.mark.skipif(not _cluster_up(), reason="no SLURM cluster here (.ci/run starts one with .ci/slurm.sh)")
def test_a_4_shard_array_on_a_real_cluster_merges_into_the_unsharded_run(tmp_path, unsharded):
    out = tmp_path / "run"
    p = subprocess.run([sys.executable, "-m", "benchmarks.cli", "slurm", "submit", "--shards", "4", "--methods",
                        ",".join(METHODS), "--profiles", "msc", "--users", "5", "--sessions", "3", "--out", str(out),
                        "--time", "00:10:00"],
                       capture_output=True, text=True, cwd=REPO, env=os.environ.copy())
    assert p.returncode == 0, p.stderr
    merge_job = p.stdout.split("merge job ")[1].split(";")[0]
    deadline = time.time() + 240
    while time.time() < deadline:
        q = subprocess.run(["squeue", "-h", "-j", merge_job], capture_output=True, text=True)
        if not q.stdout.strip():
            break
        time.sleep(0.5)
    logs = "\n".join(f.read_text() for f in sorted((out / "slurm").glob("*.out")))
    assert (out / "sessions.jsonl").exists(), logs
    assert stable(file_rows(out / "sessions.jsonl")) == stable(unsharded), logs
    assert len(list((out / "shards").iterdir())) == 4
    assert "\r" not in logs  # batch logs get plain progress lines
    assert (out / "report" / "summary.md").exists()  # the merge job writes the run's report
