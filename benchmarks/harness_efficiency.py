"""How busy ``msc run`` keeps model servers: harness efficiency against a stand-in GPU server.

The stand-in (``../shared/tools/capacity_server.py``, or any server given by ``--url``) has C
generation slots and answers each request after L seconds, so no client can get more than C / L
requests per second; *harness efficiency* is the achieved rate over that bound, over the window from
the first request to the last answer (the server's ``efficiency_active``). The run is a real
``msc run``: the hybrid user (the rule user decides, the model writes its words) and the agent both
on the server, every method's memory, checkpoints and the response cache as in any model-backed run.
Printed per capacity: model requests, efficiency, requests in flight at the server, and the harness's
CPU time per model call (this process's CPU over the run, divided by the requests the server answered).

    python -m benchmarks.harness_efficiency                       # C = 64 and 256, L = 0.2 s
    python -m benchmarks.harness_efficiency --previous /path/to/older/checkout   # the same, side by side

At C = 64 the run is vanilla and reflection x 100 users (200 lanes) in one process; at C = 256 (1,280
requests per second) four methods x 100 users (400 lanes) over two worker processes, one per core
(:data:`PRESETS`; ``--methods`` and ``--workers`` override). ``--previous`` also runs the ``msc run``
of another checkout of this package (its ``--workers`` 2 and 8, one session in flight per worker, as
before lanes existed) against the same server, at the first capacity, with ``--previous-users``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SERVER = REPO.parent / "shared" / "tools" / "capacity_server.py"

#: canned replies for the capacity server: the hybrid user's rewrite gets its JSON, everything else
#: (agent replies, reflection notes) plain text
RULES: list[dict[str, Any]] = [
    {"name": "user_rewrite", "when_any": ["## What to say"],
     "reply": {"message": "Hmm, that is not quite what I asked. Could you go over it again, step by step?"}},
    {"name": "agent", "when_any": [],
     "reply": "Here is a short solution. We simplify step by step and check each result: the answer is 42."},
]


class CapacityServer:
    """``capacity_server.py`` in a subprocess on a free loopback port."""

    def __init__(self, script: Path, capacity: int, latency: float):
        if not script.exists():
            raise FileNotFoundError(f"capacity server not found at {script}; pass --server-script or --url")
        self.rules = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
        json.dump(RULES, self.rules)
        self.rules.close()
        self.proc = subprocess.Popen([sys.executable, str(script), "--port", "0", "--capacity", str(capacity),
                                      "--latency", str(latency), "--rules", self.rules.name, "--report-every", "0"],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert self.proc.stdout is not None
        first = json.loads(self.proc.stdout.readline() or "{}")
        if first.get("event") != "listening":
            self.stop()
            raise RuntimeError(f"the capacity server did not start (exit code {self.proc.poll()})")
        self.url = f"http://127.0.0.1:{first['port']}"

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        os.unlink(self.rules.name)


def metrics(url: str, reset: bool = False) -> dict[str, Any]:
    req = urllib.request.Request(f"{url}/metrics" + ("/reset" if reset else ""), method="POST" if reset else "GET")
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.load(r)


#: per capacity, the lanes that can fill it: at C = 64, vanilla and reflection x 100 users (200 lanes) in
#: one process; at C = 256 (1,280 requests/s) four methods (400 lanes) over two processes, one a core
PRESETS: dict[int, dict[str, Any]] = {64: {"methods": "vanilla,reflection", "workers": 1},
                                      256: {"methods": "vanilla,reflection,contextual,all_memory", "workers": 2}}


def run_current(url: str, args: argparse.Namespace, methods: str, workers: int) -> dict[str, Any]:
    """This checkout's runner, in this process (its CPU time, and its workers', is the harness's)."""
    from benchmarks.run import RunConfig, run

    spec = f"openai:{args.model}@{url}/v1"
    with tempfile.TemporaryDirectory() as out:
        cfg = RunConfig(methods=methods.split(","), profiles=args.profiles, n_users=args.users,
                        sessions=args.sessions, user=f"hybrid:{spec}", agent_model=spec, out=out, progress=False,
                        lanes=args.lanes, workers=workers)
        metrics(url, reset=True)
        c0, t0 = cpu_time(), time.perf_counter()
        rows = run(cfg)
        cpu, wall = cpu_time() - c0, time.perf_counter() - t0
        lanes_used = json.loads((Path(out) / "metadata.json").read_text())["lanes_per_worker"]
    m = metrics(url)
    errors = sum(r["status"] != "ok" for r in rows)
    return {"code": "this", "methods": methods, "lanes": lanes_used * workers, "workers": workers, "sessions": len(rows),
            "errors": errors, "wall_s": wall, "requests": m["requests_total"],
            "efficiency": m["efficiency_active"], "in_flight": m["mean_in_flight_active"],
            "cpu_ms_per_call": 1000 * cpu / max(1, m["requests_total"])}


def cpu_time() -> float:
    """CPU seconds of this process and of its children that have ended (the run's worker processes;
    the capacity server still runs, so it is not counted)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def run_previous(url: str, args: argparse.Namespace, checkout: Path, methods: str, workers: int) -> dict[str, Any]:
    """Another checkout's ``msc run`` (before lanes: one session in flight per worker process)."""
    spec = f"openai:{args.model}@{url}/v1"
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "-m", "benchmarks.cli", "run", "--methods", methods, "--profiles", args.profiles,
               "--users", str(args.previous_users), "--sessions", str(args.sessions), "--user", f"hybrid:{spec}",
               "--agent-model", spec, "--workers", str(workers), "--out", out, "--no-progress", "--summary-only"]
        metrics(url, reset=True)
        t0 = time.perf_counter()
        p = subprocess.run(cmd, cwd=checkout, capture_output=True, text=True)
        wall = time.perf_counter() - t0
    m = metrics(url)
    if p.returncode not in (0, 1):
        raise RuntimeError(f"the previous code's msc run failed ({p.returncode}): {p.stderr[-500:]}")
    return {"code": f"previous ({checkout.name})", "methods": methods, "lanes": workers, "workers": workers,
            "sessions": None,
            "errors": None, "wall_s": wall, "requests": m["requests_total"], "efficiency": m["efficiency_active"],
            "in_flight": m["mean_in_flight_active"], "cpu_ms_per_call": None}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.harness_efficiency", description=__doc__.split("\n\n")[0])
    p.add_argument("--capacities", default="64,256", help="server slots C to measure at (default: %(default)s)")
    p.add_argument("--latency", type=float, default=0.2, help="service time L per reply, seconds (default: %(default)s)")
    p.add_argument("--methods", default=None, help="methods (default: per capacity, see PRESETS; else "
                                                   "vanilla,reflection)")
    p.add_argument("--profiles", default="msc", help="profile set (default: %(default)s)")
    p.add_argument("--users", type=int, default=100, help="users (default: %(default)s)")
    p.add_argument("--sessions", type=int, default=2, help="sessions per user (default: %(default)s)")
    p.add_argument("--lanes", type=int, default=None, help="lanes per worker (default: the runner's: one per "
                                                           "(method, user), up to 256)")
    p.add_argument("--workers", type=int, default=None, help="worker processes (default: per capacity, see PRESETS; "
                                                             "else 1)")
    p.add_argument("--model", default="stand-in", help="model name sent to the server")
    p.add_argument("--client", choices=("http", "sdk"), default=None,
                   help="HTTP client of the model backends: the lean one (http, default) or the openai SDK")
    p.add_argument("--url", default=None, help="an already running server (its /metrics is read); else a "
                                               "capacity server is started per capacity")
    p.add_argument("--server-script", type=Path, default=DEFAULT_SERVER, help="path of capacity_server.py")
    p.add_argument("--previous", type=Path, default=None,
                   help="another checkout of this package whose msc run is measured the same way (workers 2 and 8)")
    p.add_argument("--previous-users", type=int, default=10,
                   help="users of the previous code's runs (one session in flight per worker makes them slow; "
                        "their efficiency is a rate, so fewer users measure it too) (default: %(default)s)")
    args = p.parse_args(argv)
    if args.client:
        os.environ["MSC_LLM_CLIENT"] = args.client
    capacities = [int(c) for c in args.capacities.split(",") if c.strip()]
    print(f"harness efficiency: {args.users} users x {args.sessions} sessions per method, hybrid user and agent on "
          f"the server, L = {args.latency:g} s ({time.strftime('%Y-%m-%d')})", flush=True)
    print(f"{'C':>4} {'code':<22} {'methods':<40} {'workers':>7} {'lanes':>5} {'requests':>8} {'efficiency':>10} "
          f"{'in flight':>9} {'CPU/call':>9} {'wall':>7}", flush=True)
    for C in capacities:
        preset = PRESETS.get(C, {})
        methods = args.methods or preset.get("methods", "vanilla,reflection")
        workers = args.workers or preset.get("workers", 1)
        server = None if args.url else CapacityServer(args.server_script, C, args.latency)
        url = args.url or server.url  # type: ignore[union-attr]
        try:
            results = [run_current(url, args, methods, workers)]
            if args.previous and C == capacities[0]:
                results += [run_previous(url, args, args.previous, methods, w) for w in (2, 8)]
        finally:
            if server is not None:
                server.stop()
        for r in results:
            cpu = f"{r['cpu_ms_per_call']:.2f} ms" if r["cpu_ms_per_call"] is not None else "-"
            print(f"{C:>4} {r['code']:<22} {r['methods']:<40} {r['workers']:>7} {r['lanes']:>5} {r['requests']:>8} "
                  f"{r['efficiency']:>10.3f} {r['in_flight']:>9.1f} {cpu:>9} {r['wall_s']:>6.1f}s", flush=True)
            if r["errors"]:
                print(f"     ({r['errors']} sessions failed)", flush=True)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
