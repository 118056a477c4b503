from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


def run_cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "benchmarks.cli", *args], capture_output=True, text=True, cwd=cwd)


def test_msc_run_writes_results_and_prints_table(tmp_path):
    out = tmp_path / "run"
    p = run_cli("run", "--users", "3", "--sessions", "2", "--out", str(out), "--no-progress",
                cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "vanilla" in p.stdout and "oracle" in p.stdout and "effort" in p.stdout
    rows = [json.loads(line) for line in (out / "sessions.jsonl").read_text().splitlines()]
    # the main job's defaults: the six methods and the oracle on the 43-preference profiles
    assert len(rows) == 7 * 3 * 2 and all(r["status"] == "ok" for r in rows)
    assert {r["user_id"] for r in rows} == {"complex-0000", "complex-0001", "complex-0002"}
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["config"]["sessions"] == 2 and meta["simulated"] is True
    # it closes with what the run shows and where the results are
    assert "Share of that gap each method closed" in p.stdout and "tensorboard --logdir" in p.stdout
    assert (out / "report" / "summary.md").exists() and (out / "report" / "curve_user_effort.png").exists()


def test_msc_run_bad_names_fail_with_one_line(tmp_path):
    p = run_cli("run", "--methods", "vanila", "--users", "1", "--sessions", "1", "--out", str(tmp_path / "r"),
                cwd=tmp_path)
    assert p.returncode == 2
    assert p.stderr.strip().count("\n") == 0 and "did you mean 'vanilla'" in p.stderr
    p = run_cli("run", "--datasets", "gen_mth", "--users", "1", "--out", str(tmp_path / "r"), cwd=tmp_path)
    assert p.returncode == 2 and "gen_math" in p.stderr


def test_plugin_agent_runs_by_module_class_and_report_reads_the_run(tmp_path):
    import os
    from pathlib import Path

    examples = Path(__file__).resolve().parents[2] / "examples"
    env = {**os.environ, "PYTHONPATH": f"{examples}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    out = tmp_path / "plug"
    p = subprocess.run([sys.executable, "-m", "benchmarks.cli", "run", "--methods",
                        "vanilla,plugin_agent:VerbatimMemoryAgent", "--users", "3", "--sessions", "2", "--out", str(out),
                        "--no-progress"], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert p.returncode == 0, p.stderr
    assert "plugin_agent:VerbatimMemoryAgent" in p.stdout
    r = run_cli("report", str(out), "--compare", "plugin_agent:VerbatimMemoryAgent,vanilla", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "paired over 3 users" in r.stdout
    bad = run_cli("report", str(tmp_path / "nothing"), cwd=tmp_path)
    assert bad.returncode == 2 and "sessions.jsonl" in bad.stderr


def test_parallel_workers_give_identical_rows(tmp_path):
    from benchmarks.run import RunConfig, run

    kw = dict(methods=["vanilla", "rag_vector", "reflection"], n_users=4, sessions=2, progress=False)
    a = run(RunConfig(out=str(tmp_path / "a"), **kw))
    b = run(RunConfig(out=str(tmp_path / "b"), workers=2, **kw))

    def key(r):
        return (r["method"], r["user_id"], r["session"])

    def strip(rows):
        return sorted(({k: v for k, v in r.items() if k != "seconds"} for r in rows), key=key)

    assert strip(a) == strip(b) and len(a) == 24


def test_agent_args_reach_the_agents_that_take_them(tmp_path):
    from benchmarks.run import RunConfig, _agent_kwargs
    from personalization_env.env import MultiSessionCollabEnv

    cfg = RunConfig(methods=["rag", "vanilla"], agent_args={"reranker": "none", "K": 8}, out=str(tmp_path))
    env = MultiSessionCollabEnv(n_users=1)
    assert _agent_kwargs("rag", cfg, env)["reranker"] == "none"
    assert "reranker" not in _agent_kwargs("vanilla", cfg, env)
    from benchmarks.cli import main

    assert main(["run", "--methods", "vanilla", "--agent-arg", "oops", "--out", str(tmp_path / "x")]) == 2


def test_errors_name_their_fix(tmp_path):
    from personalization_env.profiles import load_profiles
    from personalization_env.profiles.io import dump_profiles

    small = tmp_path / "three.jsonl"
    dump_profiles(load_profiles("msc")[:3], small)
    p = run_cli("run", "--profiles", str(small), "--sessions", "1", "--out", str(tmp_path / "a"), cwd=tmp_path)
    assert p.returncode == 2 and "--users 0" in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
    p = run_cli("run", "--profiles", str(small), "--users", "0", "--sessions", "1", "--out", str(tmp_path / "b"),
                "--summary-only", "--no-progress", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    (tmp_path / "myagent.py").write_text("from agents.vanilla import VanillaAgent as MyAgent\n")
    msc = Path(sys.executable).with_name("msc")  # the console script: the current folder is not on its path
    if msc.exists():
        p = subprocess.run([str(msc), "run", "--methods", "myagent:MyAgent", "--users", "1", "--sessions", "1",
                            "--out", str(tmp_path / "c")], capture_output=True, text=True, cwd=tmp_path)
        assert p.returncode == 2 and "PYTHONPATH=." in p.stderr, p.stderr


def test_env_declares_a_render_fps():
    import warnings

    import gymnasium as gym

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        env = gym.make("MultiSessionCollab-v0", n_users=1, render_mode="ansi")
        env.reset(seed=0)
        env.render()
    assert not [w for w in caught if "render fps" in str(w.message).lower()]


def test_msc_run_world_flag_unknown_name_and_resume_with_another_world(tmp_path):
    p = run_cli("run", "--world", "msc-llama", "--users", "1", "--sessions", "1", "--out", str(tmp_path / "r"),
                cwd=tmp_path)
    assert p.returncode == 2 and p.stderr.strip().count("\n") == 0
    assert "default" in p.stderr and "msc-llama70b" in p.stderr and "vars-llama8b" in p.stderr
    out = tmp_path / "v"
    p = run_cli("run", "--world", "vars-llama8b", "--methods", "vanilla", "--datasets", "gen_code", "--users", "2",
                "--sessions", "1", "--out", str(out), "--no-progress", "--no-report", "--no-tensorboard", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    rows = [json.loads(line) for line in (out / "sessions.jsonl").read_text().splitlines()]
    assert all(r["user_id"].startswith("complex") and "user_tokens" in r for r in rows)
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["config"]["world"] == "vars-llama8b"
    p = run_cli("run", "--methods", "vanilla", "--datasets", "gen_code", "--profiles", "complex", "--users", "2",
                "--sessions", "1", "--out", str(out), "--resume", "--no-progress", cwd=tmp_path)
    assert p.returncode != 0 and "world" in p.stderr


@pytest.mark.parametrize("world,data_dir", [("msc-llama70b", None), ("vars-llama8b", "empty")])
def test_calibrate_without_the_worlds_data_is_one_line_and_exit_2(tmp_path, world, data_dir):
    import os

    env = {k: v for k, v in os.environ.items() if k != "MSC_DATA_DIR"}
    args = ["--world", world, "--check"] + (["--data-dir", str(tmp_path)] if data_dir else [])
    p = subprocess.run([sys.executable, "-m", "benchmarks.calibrate", *args], capture_output=True, text=True,
                       cwd=Path(__file__).resolve().parents[2], env=env)
    assert p.returncode == 2, p.stderr
    assert p.stderr.startswith("error: ") and p.stderr.strip().count("\n") == 0, p.stderr
    assert "MSC_DATA_DIR" in p.stderr  # names the fix
