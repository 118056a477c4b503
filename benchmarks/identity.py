"""Run identity: what made a run's results, so that ``--resume`` and ``--continue-from`` never mix runs.

``metadata.json`` records the package version and git revision, the environment id, every role's
backend and model (and what the server said of it), the configuration that decides results, and
hashes of the profile set and of the task set, and every value the world preset sets (so a preset
whose fitted values changed is not mixed with runs made before). Continuing a run compares the two identities and
refuses, in one line naming the first difference, when they differ. Server addresses are not part
of the identity (a run moved to other nodes continues), nor are the knobs that do not change
results (workers, lanes, timeouts, output folder, progress) or the number of sessions (continuing
to more sessions is what ``--continue-from`` is for).
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from pathlib import Path
from typing import Any, Mapping, Sequence

from personalization_env import __version__
from personalization_env.env import ENV_ID
from personalization_env.profiles.io import profile_to_dict
from personalization_env.types import Profile, Task
from personalization_env.worlds import get_world

#: RunConfig fields that decide a run's results (and so must match to continue it).
RESULT_FIELDS: tuple[str, ...] = ("world", "methods", "profiles", "n_users", "user_ids", "datasets", "max_turns",
                                  "feedback", "agent_model", "user", "user_args", "agent_args", "seed")
#: values of result fields added later, for runs recorded before them (an old run was made in that world)
ADDED_LATER: dict[str, Any] = {"world": "default"}

_URL = re.compile(r"@https?://[^\s,;\"']*")


def strip_urls(value: Any) -> Any:
    """``value`` with ``@http(s)://...`` server addresses removed from every string in it."""
    if isinstance(value, str):
        return _URL.sub("", value)
    if isinstance(value, Mapping):
        return {k: strip_urls(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strip_urls(v) for v in value]
    return value


def git_revision(path: Path | None = None) -> dict[str, Any] | None:
    """``{"commit", "dirty"}`` of the checkout the package runs from (None when it is not a git checkout)."""
    where = path or Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "-C", str(where), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10)
        if head.returncode != 0:
            return None
        status = subprocess.run(["git", "-C", str(where), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return {"commit": head.stdout.strip(), "dirty": bool(status.stdout.strip())}


def _sha256(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def profiles_hash(profiles: Sequence[Profile]) -> str:
    return _sha256([profile_to_dict(p) for p in profiles])


def tasks_hash(tasks: Sequence[Task]) -> str:
    return _sha256([[t.task_id, t.dataset, t.kind, t.problem, t.answer, list(t.choices)] for t in tasks])


def run_identity(config: Mapping[str, Any], profiles: Sequence[Profile], tasks: Sequence[Task],
                 roles: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The identity of a run (see module docstring).

    Args:
        config: the run's configuration (``dataclasses.asdict`` of a RunConfig).
        profiles: the users of the run.
        tasks: the env's task set.
        roles: per model role, ``{"model": ..., "served": ...}`` (see ``benchmarks.run``).
    """
    return {"package_version": __version__, "git": git_revision(), "env": ENV_ID,
            "config": strip_urls({k: config.get(k) for k in RESULT_FIELDS}),
            "roles": {r: dict(v) for r, v in roles.items()},
            "profiles_sha256": profiles_hash(profiles), "tasks_sha256": tasks_hash(tasks),
            "world_values": get_world(config.get("world") or "default").values()}


def difference(old: Mapping[str, Any], new: Mapping[str, Any], *, allow_code_change: bool = False) -> str | None:
    """The first way the run ``old`` differs from ``new`` (None when they match), as a phrase:
    "it was made with seed=0, this run has seed=1"."""
    def said(what: str, a: Any, b: Any) -> str:
        return f"it was made with {what}={json.dumps(a)}, this run has {what}={json.dumps(b)}"

    if old.get("package_version") != new.get("package_version"):
        return said("package version", old.get("package_version"), new.get("package_version"))
    if old.get("env") != new.get("env"):
        return said("env", old.get("env"), new.get("env"))
    a, b = old.get("git"), new.get("git")
    if not allow_code_change and a and b and a.get("commit") != b.get("commit"):
        return (f"it was made at git revision {a['commit'][:10]}, this code is at {b['commit'][:10]} "
                f"(--allow-code-change continues anyway)")
    oc, nc = old.get("config", {}), new.get("config", {})
    for k in RESULT_FIELDS:
        a_, b_ = oc.get(k, ADDED_LATER.get(k)), nc.get(k, ADDED_LATER.get(k))
        if a_ != b_:
            return said(k, a_, b_)
    world = nc.get("world", ADDED_LATER["world"])
    # a run recorded before the preset's values were kept: the default world's never changed
    before = get_world("default").values() if oc.get("world", ADDED_LATER["world"]) == "default" else None
    ov, nv = old.get("world_values", before), new.get("world_values")
    if nv is not None and ov != nv:
        if ov is None:
            return f"it was recorded without the values of world {world!r}, so they cannot be compared"
        k = next(k for k in sorted(set(ov) | set(nv)) if ov.get(k) != nv.get(k))
        return f"world {world!r} set {k}={json.dumps(ov.get(k))} then, it sets {k}={json.dumps(nv.get(k))} now"
    for what in ("profiles_sha256", "tasks_sha256"):
        if old.get(what) != new.get(what):
            return f"its {what.split('_')[0]} differ from this run's (the files changed)"
    orole, nrole = old.get("roles", {}), new.get("roles", {})
    for role in sorted(set(orole) | set(nrole)):
        o, n = orole.get(role, {}), nrole.get(role, {})
        if o.get("model") != n.get("model"):
            return said(f"{role} model", o.get("model"), n.get("model"))
        so, sn = (o.get("served") or {}).get("root"), (n.get("served") or {}).get("root")
        if so and sn and so != sn:  # same name, other weights
            return f"its {role} model was served from {so}, this run's is served from {sn}"
    return None
