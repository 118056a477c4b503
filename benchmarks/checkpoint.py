"""Session checkpoints of lanes, and the lock that keeps one run writing to a folder.

After each finished session a lane saves ``<out>/lanes/<method>/<user>.ckpt``: the rows of every
session it finished, the agent's state (``Agent.state_dict()``) and the env's lifetime state
(``env.snapshot()``). The file is written beside its final name and renamed over it, so it is always
a whole checkpoint: a process killed at any moment leaves the last one or the new one. The row goes
to ``sessions.jsonl`` only after its checkpoint, so ``sessions.jsonl`` can always be rebuilt from
the checkpoints (``--resume`` does), and a session whose checkpoint exists never runs again. Large
arrays (a user vector's item basis) sit in side files that are rewritten only when they change
(:class:`LaneWriter`).

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
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

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


def side_array(name: str) -> Any:
    """What a checkpoint pickles in place of an array kept in a side file; :class:`_Unpickler` loads the
    file instead of calling this."""
    raise pickle.UnpicklingError(f"side file {name!r} referenced outside its checkpoint's folder "
                                 "(read checkpoints with benchmarks.checkpoint.load_all)")


class _Pickler(pickle.Pickler):
    def __init__(self, f: Any, override: Callable[[Any], Any]):
        super().__init__(f, protocol=pickle.HIGHEST_PROTOCOL)
        self._override = override

    def reducer_override(self, obj: Any) -> Any:
        return self._override(obj)


class _Unpickler(pickle.Unpickler):
    """Reads a checkpoint, loading the side files it names (see :class:`LaneWriter`)."""

    def __init__(self, f: Any, folder: Path):
        super().__init__(f)
        self.folder, self.side = folder, []

    def find_class(self, module: str, name: str) -> Any:
        if module == __name__ and name == "side_array":
            return self._load_side
        return super().find_class(module, name)

    def persistent_load(self, pid: Any) -> Any:  # checkpoints written before side_array
        kind, name = pid
        if kind != "npy":
            raise pickle.UnpicklingError(f"unknown reference {pid!r} in a checkpoint")
        return self._load_side(name)

    def _load_side(self, name: str) -> Any:
        import numpy as np

        if "/" in name or name.startswith("."):
            raise pickle.UnpicklingError(f"bad side file name {name!r} in a checkpoint")
        arr = np.load(self.folder / name, allow_pickle=False)
        self.side.append((arr, name))
        return arr


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
    side: list[tuple[Any, str]] = field(default_factory=list, repr=False)
    """the side-file arrays it was read with (see :class:`LaneWriter`)"""

    @property
    def sessions_done(self) -> int:
        return len(self.rows)


def _payload(ck: LaneCheckpoint) -> dict[str, Any]:
    return {"format": FORMAT, "method": ck.method, "user_id": ck.user_id, "rows": ck.rows, "agent": ck.agent,
            "env": ck.env}


def _write(path: Path, blob: bytes, mkdir: bool = True) -> None:
    if mkdir:
        path.parent.mkdir(parents=True, exist_ok=True)
    tmp = f"{path.parent}/.{path.name}.{os.getpid()}.{threading.get_ident()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(blob)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)
    os.replace(tmp, path)


def save(out: Path, ck: LaneCheckpoint) -> None:
    """Write ``ck`` atomically, in one file (see module docstring; lanes use :class:`LaneWriter`)."""
    _write(lane_path(out, ck.method, ck.user_id), pickle.dumps(_payload(ck), protocol=pickle.HIGHEST_PROTOCOL))


class LaneWriter:
    """Writes one lane's checkpoints, after every session.

    Arrays of 64 KiB or more (a user vector's item basis) go to side files beside the checkpoint,
    written only when their content changed since the lane's last checkpoint (the basis changes at
    refits, not every session); the checkpoint refers to them by name. Side files are never
    overwritten (a new content gets a new name), so the checkpoint file's rename stays the one
    moment a checkpoint changes; the files no checkpoint refers to any more are removed.

    Args:
        out: the run folder.
        method, user_id: the lane.
        previous: the side arrays of the checkpoint the lane resumed from (``LaneCheckpoint.side``).
    """

    BIG = 1 << 16

    def __init__(self, out: Path, method: str, user_id: str, previous: list[tuple[Any, str]] | None = None):
        self.path = lane_path(out, method, user_id)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._side: list[tuple[Any, str]] = list(previous or [])

    def save(self, ck: LaneCheckpoint) -> None:
        """Write ``ck`` now (see :meth:`prepare`)."""
        self.prepare(ck)()

    def prepare(self, ck: LaneCheckpoint) -> Callable[[], None]:
        """Pickle ``ck`` now, on the caller's thread (the agent's state changes as soon as its next
        session starts), and return the disk work: new side files, the checkpoint's atomic rename,
        then the removal of side files it no longer names. The writes of one lane must run in the
        order they were prepared; any thread may run them (lanes hand them to a writer thread, so a
        lane does not wait on the disk)."""
        import io

        import numpy as np

        used: list[tuple[Any, str]] = []
        new: list[tuple[Any, str]] = []

        def reducer_override(obj: Any) -> Any:  # called for objects of no built-in type only
            if not (type(obj) is np.ndarray and obj.nbytes >= self.BIG and obj.dtype != object):
                return NotImplemented
            for arr, name in self._side:
                if arr.shape == obj.shape and arr.dtype == obj.dtype and np.array_equal(arr, obj):
                    used.append((arr, name))
                    return side_array, (name,)
            name = f"{self.path.stem}.{uuid.uuid4().hex[:12]}.npy"
            new.append((obj.copy(), name))
            used.append(new[-1])
            return side_array, (name,)

        buf = io.BytesIO()
        _Pickler(buf, reducer_override).dump(_payload(ck))
        kept = {name for _, name in used}
        stale = [name for _, name in self._side if name not in kept]
        self._side = used
        folder, path, blob = self.path.parent, self.path, buf.getbuffer()

        def write() -> None:
            for arr, name in new:
                with open(folder / name, "wb") as f:
                    np.save(f, arr, allow_pickle=False)
            _write(path, blob, mkdir=False)
            for name in stale:
                (folder / name).unlink(missing_ok=True)

        return write


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
    referenced: set[Path] = set()
    for path in sorted(root.glob("*/*.ckpt")):
        try:
            with open(path, "rb") as f:
                reader = _Unpickler(f, path.parent)
                d = reader.load()
            if d.get("format") != FORMAT:
                raise ValueError(f"checkpoint format {d.get('format')!r}, expected {FORMAT}")
            ck = LaneCheckpoint(d["method"], d["user_id"], list(d["rows"]), d["agent"], dict(d["env"]),
                                side=reader.side)
        except Exception as e:  # noqa: BLE001 - any unreadable checkpoint means: rerun that lane
            logger.warning("checkpoint %s cannot be read (%s: %s); its lane reruns from session 0",
                           path, type(e).__name__, e)
            continue
        referenced |= {path.parent / name for _, name in ck.side}
        found[(ck.method, ck.user_id)] = ck
    for side in root.glob("*/*.npy"):  # left by a writer killed between a side file and its checkpoint
        if side not in referenced:
            side.unlink(missing_ok=True)
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
