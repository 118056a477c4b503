"""TensorBoard curves of a run: ``<out>/tensorboard/<method>/``, one TensorBoard run per method.

Open them with ``tensorboard --logdir <out>/tensorboard``. Tags, grouped as TensorBoard shows them:

- ``by_session/<metric>``: the metric's mean over users at each session index (step = session
  index), written once every user of the method has finished that session (at the end of the run
  for sessions some lane did not finish). Metrics: return, user_effort, task_success, turns,
  timeout, compliance; rag_vector also ``by_session/vector_norm`` (the norm of the long-term user
  vector after the session) and ``by_session/vector_change_rate`` (the share of retrieval turns in
  which the user vector changed the chosen cards).
- ``sessions/<metric>``: the mean of each block of ``block`` sessions in the order they finished (step
  = the method's count of finished sessions at the block's end; ``block`` is the number of users, so a
  point is about one session per user, without the cost of an event per session in big runs).
- ``model/<role>_tokens`` and ``model/<role>_latency_s``: the same blocks, for each role on a model server.

Only ``tensorboard`` is needed (its event writer; torch is not imported). A resumed or continued run
rewrites the curves from every finished session, so they never hold a point twice.
"""

from __future__ import annotations

import re
import shutil
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Sequence

METRICS: tuple[str, ...] = ("return", "user_effort", "task_success", "turns", "timeout", "compliance")


def load_writer() -> tuple[Any, Any, Any]:
    """TensorBoard's event writer and protos (imported here once: the import takes about half a second)."""
    try:
        from tensorboard.compat.proto import event_pb2, summary_pb2
        from tensorboard.summary.writer.event_file_writer import EventFileWriter
    except ImportError as e:
        raise ImportError("TensorBoard curves need: pip install 'multisessioncollab[tb]' (or pass "
                          "--no-tensorboard)") from e
    return EventFileWriter, event_pb2.Event, summary_pb2.Summary


class _ScalarWriter:
    """Scalars into one TensorBoard event file (tensorboard's own writer)."""

    def __init__(self, logdir: Path):
        writer, self._event, self._summary = load_writer()
        logdir.mkdir(parents=True, exist_ok=True)
        self._w = writer(str(logdir))

    def add(self, tag: str, value: float, step: int) -> None:
        summary = self._summary(value=[self._summary.Value(tag=tag, simple_value=float(value))])
        self._w.add_event(self._event(summary=summary, step=int(step), wall_time=time.time()))

    def close(self) -> None:
        self._w.close()


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "agent"


class RunCurves:
    """Writes the curves of one run (see module docstring).

    Args:
        out: the run folder (curves go to ``out/tensorboard``; earlier curves there are replaced).
        methods: the run's methods (one TensorBoard run each).
        users: users per method (a session index is complete when this many rows have it).
    """

    def __init__(self, out: Path, methods: Sequence[str], users: int):
        root = Path(out) / "tensorboard"
        shutil.rmtree(root, ignore_errors=True)
        self.users = users
        self.block = max(1, users)
        self._writers = {m: _ScalarWriter(root / _slug(m)) for m in methods}
        self._count: dict[str, int] = defaultdict(int)
        self._blocks: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self._groups: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)

    def add(self, row: dict[str, Any]) -> None:
        """One finished session (rows that failed are not plotted)."""
        if row.get("status") != "ok" or row["method"] not in self._writers:
            return
        m = row["method"]
        self._count[m] += 1
        self._blocks[m].append(row)
        if len(self._blocks[m]) == self.block:
            self._write_block(m)
        group = self._groups[(m, row["session"])]
        group.append(row)
        if len(group) == self.users:
            self._write_group(m, row["session"])

    def _write_block(self, method: str) -> None:
        rows, self._blocks[method] = self._blocks[method], []
        w, step = self._writers[method], self._count[method]
        for k in METRICS:
            w.add(f"sessions/{k}", sum(float(r[k]) for r in rows) / len(rows), step)
        roles = {role for r in rows for role in (r.get("llm") or {})}
        for role in sorted(roles):
            used = [r["llm"][role] for r in rows if role in (r.get("llm") or {})]
            w.add(f"model/{role}_tokens", sum(d.get("tokens", 0) for d in used) / len(used), step)
            w.add(f"model/{role}_latency_s", sum(d.get("latency_s", 0.0) for d in used) / len(used), step)

    def _write_group(self, method: str, session: int) -> None:
        rows = self._groups.pop((method, session))
        w = self._writers[method]
        for k in METRICS:
            w.add(f"by_session/{k}", sum(float(r[k]) for r in rows) / len(rows), session)
        stats = [r["agent_stats"] for r in rows if isinstance(r.get("agent_stats"), dict)]
        norms = [s["z_long_norm"] for s in stats if "z_long_norm" in s]
        if norms:
            w.add("by_session/vector_norm", sum(norms) / len(norms), session)
        turns = sum(s.get("turns", 0) for s in stats)
        if turns:
            w.add("by_session/vector_change_rate", sum(s.get("changed", 0) for s in stats) / turns, session)

    def close(self) -> None:
        """Write the last, shorter blocks and the session indices some users did not finish; close the files."""
        for method in [m for m, rows in self._blocks.items() if rows]:
            self._write_block(method)
        for method, session in sorted(self._groups):
            self._write_group(method, session)
        for w in self._writers.values():
            w.close()
