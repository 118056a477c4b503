"""msc play: a person plays the user in a terminal (driven here through a pseudo-terminal)."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


class Terminal:
    """A child process on a pseudo-terminal: read until a prompt, then type."""

    def __init__(self, cmd: list[str]):
        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, cwd=REPO, close_fds=True)
        os.close(slave)
        self.seen = ""

    def expect(self, text: str, timeout: float = 30.0) -> str:
        deadline = time.time() + timeout
        while text not in self.seen:
            left = deadline - time.time()
            if left <= 0 or self.proc.poll() is not None and not select.select([self.master], [], [], 0)[0]:
                raise AssertionError(f"did not see {text!r}; the screen was:\n{self.seen[-2000:]}")
            if select.select([self.master], [], [], min(left, 0.5))[0]:
                try:
                    self.seen += os.read(self.master, 65536).decode("utf-8", "replace")
                except OSError:
                    break
        head, _, self.seen = self.seen.partition(text)
        return head

    def type(self, line: str) -> None:
        os.write(self.master, (line + "\n").encode())

    def close(self) -> int:
        rc = self.proc.wait(timeout=30)
        os.close(self.master)
        return rc


def test_a_person_plays_a_session_that_is_saved_like_any_run(tmp_path):
    out = tmp_path / "play"
    t = Terminal([sys.executable, "-m", "benchmarks.cli", "play", "--agent", "vanilla", "--profiles", "msc",
                  "--user-id", "msc-0002", "--out", str(out)])
    try:
        screen = t.expect("you> ")
        assert "Your task:" in screen and "Act out this user" in screen
        t.type("Hi! Can you help me with this?")
        t.expect("you> ")
        t.type("Please keep it much shorter next time.")
        t.expect("label (Enter:")
        t.type("r")  # a restatement of a preference ...
        t.expect("which preference(s)")
        t.type("1")  # ... the profile's first
        t.expect("you> ")
        t.type("/done")
        t.expect("Your final answer")
        t.type("")
        assert t.close() == 0
    finally:
        if t.proc.poll() is None:
            t.proc.kill()
    rows = [json.loads(x) for x in (out / "sessions.jsonl").read_text().splitlines()]
    assert len(rows) == 1 and rows[0]["status"] == "ok" and rows[0]["method"] == "vanilla"
    r = rows[0]
    assert r["user_id"] == "msc-0002" and r["labels"] == ["neg_constraint_restate", "pos_praise"]
    assert r["user_effort"] == 1 and r["turns"] == 3
    said = [text for role, text in r["transcript"] if role == "user"]
    assert said[0].startswith("Hi! Can you help me with this?") and said[1] == "Please keep it much shorter next time."
    assert [role for role, _ in r["transcript"]] == ["user", "assistant", "user", "assistant", "user"]
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["config"]["user"] == "human"


def test_human_simulator_reads_and_writes_the_given_streams():
    import io

    import numpy as np

    from personalization_env.profiles import load_profiles
    from personalization_env.tasks import load_tasks
    from personalization_env.users.human import HumanUserSimulator

    out = io.StringIO()
    sim = HumanUserSimulator(show_profile=False, stdin=io.StringIO("help please\nthanks, that works\n\n/quit\n"),
                             stdout=out)
    session, first = sim.start(load_profiles("msc")[0], load_tasks("gen_math", n=1)[0], np.random.default_rng(0))
    assert first.message.startswith("help please") and "Act out" not in out.getvalue()
    turn = session.respond("The answer is 4.")
    assert turn.message == "thanks, that works" and turn.label in {"pos_praise", "pos_progress", "neutral"}  # Enter: the guess
    end = session.respond("Anything else?")
    assert end.done and end.outcome == "gave_up"
    with pytest.raises(EOFError, match="closed the input"):
        session.respond("More?")
