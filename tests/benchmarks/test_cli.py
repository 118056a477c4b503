from __future__ import annotations

import json
import subprocess
import sys


def run_cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "benchmarks.cli", *args], capture_output=True, text=True, cwd=cwd)


def test_msc_run_writes_results_and_prints_table(tmp_path):
    out = tmp_path / "run"
    p = run_cli("run", "--users", "3", "--sessions", "2", "--out", str(out), "--no-progress", "--by-session",
                cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "vanilla" in p.stdout and "oracle" in p.stdout and "effort" in p.stdout
    rows = [json.loads(line) for line in (out / "sessions.jsonl").read_text().splitlines()]
    assert len(rows) == 2 * 3 * 2 and all(r["status"] == "ok" for r in rows)
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["config"]["sessions"] == 2 and meta["simulated"] is True


def test_msc_run_bad_names_fail_with_one_line(tmp_path):
    p = run_cli("run", "--methods", "vanila", "--users", "1", "--sessions", "1", "--out", str(tmp_path / "r"),
                cwd=tmp_path)
    assert p.returncode == 2
    assert p.stderr.strip().count("\n") == 0 and "did you mean 'vanilla'" in p.stderr
    p = run_cli("run", "--datasets", "gen_mth", "--users", "1", "--out", str(tmp_path / "r"), cwd=tmp_path)
    assert p.returncode == 2 and "gen_math" in p.stderr
