"""SIGKILL at random moments, then --resume, many times over one run: the final rows equal an
uninterrupted run's, no session is lost or duplicated, and no finished session runs again."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.run import RunConfig, run

REPO = Path(__file__).resolve().parents[2]
LOGGED = "tests.benchmarks.plugins:StartLogAgent"
METHODS = ["vanilla", "rag_vector", LOGGED]


def read_rows(path: Path) -> list[dict]:
    rows = []
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut by the kill
                pass
    return rows


def key(r: dict) -> tuple:
    return r["method"], r["user_id"], r["session"]


def test_sigkill_at_random_moments_then_resume(tmp_path):
    users, sessions = 6, 8
    ref = run(RunConfig(methods=METHODS, profiles="complex", n_users=users, sessions=sessions, out=str(tmp_path / "ref"),
                        progress=False))
    out, log = tmp_path / "r", tmp_path / "starts.log"
    cmd = [sys.executable, "-m", "benchmarks.cli", "run", "--methods", ",".join(METHODS), "--profiles", "complex",
           "--users", str(users), "--sessions", str(sessions), "--workers", "2", "--lanes", "2", "--out", str(out),
           "--resume", "--no-progress", "--no-report",
           "--allow-code-change"]  # (a commit made while the test runs is not what it tests)
    env = {**os.environ, "MSC_TEST_START_LOG": str(log)}
    rng = random.Random(20261129)
    kills: list[tuple[set, int]] = []  # (sessions finished when killed, start-log lines then)
    for _ in range(40):
        p = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if len(kills) < 6:  # kill once a random number of further sessions is done, plus a random moment
            done = len(read_rows(out / "sessions.jsonl"))
            target = rng.randint(done + 1, len(ref) - 1) if done + 1 < len(ref) else len(ref)
            while p.poll() is None and len(read_rows(out / "sessions.jsonl")) < target:
                time.sleep(0.02)
            time.sleep(rng.uniform(0.0, 0.3))
            if p.poll() is None:
                finished = {key(r) for r in read_rows(out / "sessions.jsonl") if r["status"] == "ok"}
                lines = len(log.read_text().splitlines()) if log.exists() else 0
                p.send_signal(signal.SIGKILL)
                p.wait()
                p.stderr.close()
                kills.append((finished, lines))
                continue
        p.wait(timeout=300)
        err = p.stderr.read()
        p.stderr.close()
        if p.returncode == 2 and "another msc run" in err:  # the killed run's workers are still dying
            time.sleep(0.2)
            continue
        assert p.returncode == 0, err
        if len(read_rows(out / "sessions.jsonl")) == len(ref):
            break
    else:
        raise AssertionError("the run did not finish after 40 starts")
    interrupted = [k for k in kills if 0 < len(k[0]) < len(ref)]
    assert len(interrupted) >= 3, f"only {len(interrupted)} kills landed mid-run"

    rows = read_rows(out / "sessions.jsonl")
    assert len(rows) == len(ref) and len({key(r) for r in rows}) == len(ref)  # none lost, none twice
    strip = lambda rs: sorted((json.dumps({k: v for k, v in r.items() if k != "seconds"}, sort_keys=True) for r in rs))
    assert strip(rows) == strip(ref)  # equal to the uninterrupted run

    starts = [tuple(x.split()) for x in log.read_text().splitlines()]
    for finished, at in kills:
        again = [(u, int(s)) for u, s in starts[at:] if (LOGGED, u, int(s)) in finished]
        assert not again, f"finished sessions started again after a resume: {again[:5]}"
