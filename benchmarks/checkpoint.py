"""Session checkpoints of lanes, and the lock that keeps one run writing to a folder.

After each finished session a lane saves ``<out>/lanes/<method>/<user>.ckpt``: the rows of every
session it finished, the agent's state (``Agent.state_dict()``) and the env's lifetime state
(``env.snapshot()``). The file is written beside its final name and renamed over it, so it is always
a whole checkpoint: a process killed at any moment leaves the last one or the new one. The row goes
to ``sessions.jsonl`` only after its checkpoint, so ``sessions.jsonl`` can always be rebuilt from
the checkpoints (``--resume`` does), and a session whose checkpoint exists never runs again.

Checkpoints are pickles (agent states hold arrays): load only run folders you trust, as with any
model checkpoint.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

LANES_DIR = "lanes"
FORMAT = 1


def _slug(name: str) -> str:
    """A file-safe name; a hash keeps distinct names apart when the cleaning makes them equal."""
    clean = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "x"
    if clean == name:
        return name
    return f"{clean[:60]}-{hashlib.blake2b(name.encode(), digest_size=4).hexdigest()}"


def lane_path(out: Path, method: str, user_id: str) -> Path:
    """Where the checkpoint of lane (``method``, ``user_id``) of the run in ``out`` lives."""
    return Path(out) / LANES_DIR / _slug(method) / f"{_slug(user_id)}.ckpt"


@dataclass
class LaneCheckpoint:
    """A lane after its last finished session.

    Args:
        method: the agent name.
        user_id: the user.
        rows: the rows of the lane's finished sessions, in order (sessions 0 .. k-1).
        agent: the agent's ``state_dict()``.
        env: the env's ``snapshot()``.
    """

    method: str
    user_id: str
    rows: list[dict[str, Any]]
    agent: Any
    env: dict[str, Any]

    @property
    def sessions_done(self) -> int:
        return len(self.rows)


def save(out: Path, ck: LaneCheckpoint) -> None:
    """Write ``ck`` atomically (see module docstring)."""
    path = lane_path(out, ck.method, ck.user_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    blob = pickle.dumps({"format": FORMAT, "method": ck.method, "user_id": ck.user_id, "rows": ck.rows,
                         "agent": ck.agent, "env": ck.env}, protocol=pickle.HIGHEST_PROTOCOL)
    with open(tmp, "wb") as f:
        f.write(blob)
    os.replace(tmp, path)


def load_all(out: Path) -> dict[tuple[str, str], LaneCheckpoint]:
    """Every lane checkpoint of the run in ``out``, by (method, user id). Leftovers of interrupted
    writes are removed; a checkpoint that cannot be read is skipped with a warning (its lane reruns
    from its first session)."""
    found: dict[tuple[str, str], LaneCheckpoint] = {}
    root = Path(out) / LANES_DIR
    if not root.is_dir():
        return found
    for tmp in root.glob("*/.*.tmp"):
        tmp.unlink(missing_ok=True)
    for path in sorted(root.glob("*/*.ckpt")):
        try:
            with open(path, "rb") as f:
                d = pickle.load(f)
            if d.get("format") != FORMAT:
                raise ValueError(f"checkpoint format {d.get('format')!r}, expected {FORMAT}")
            ck = LaneCheckpoint(d["method"], d["user_id"], list(d["rows"]), d["agent"], dict(d["env"]))
        except Exception as e:  # noqa: BLE001 - any unreadable checkpoint means: rerun that lane
            logger.warning("checkpoint %s cannot be read (%s: %s); its lane reruns from session 0",
                           path, type(e).__name__, e)
            continue
        found[(ck.method, ck.user_id)] = ck
    return found


class RunLockedError(RuntimeError):
    """Another process is writing to the run folder."""


class RunLock:
    """An exclusive lock on a run folder (``<out>/.lock``) for as long as a run writes to it.

    Worker processes forked by the run inherit it, so a run killed while its workers still live
    stays locked until they are gone too.
    """

    def __init__(self, out: Path):
        self.path = Path(out) / ".lock"
        self._fd: int | None = None

    def __enter__(self) -> "RunLock":
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not on POSIX: no locking
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise RunLockedError(f"another msc run (pid {holder}) is writing to {self.path.parent}; wait for it to "
                                 f"end or use another --out") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the last descriptor releases the lock
            self._fd = None
