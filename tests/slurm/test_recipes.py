"""The SLURM/vLLM serving recipes under ``slurm/``.

No GPU and no ``vllm`` here: the serve scripts run against a fake ``vllm`` executable (a tiny
OpenAI-style HTTP server that records its command line and environment), ``wait_healthy.sh``
against loopback HTTP servers, and ``run_with_servers.sbatch`` with a fake ``msc`` that records its
arguments. Everything binds to 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SLURM = REPO / "slurm"
SCRIPTS = sorted([*SLURM.glob("*.sh"), *SLURM.glob("*.sbatch")])
WAIT = SLURM / "wait_healthy.sh"
SECRET = "sk-test-Zq8v3NotForPrinting"
KEY_VARS = ("MSC_API_KEY", "OPENAI_API_KEY", "VLLM_API_KEY", "HF_TOKEN")

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


# --------------------------------------------------------------------------- helpers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in KEY_VARS and not k.startswith(("SLURM_", "MSC_"))}
    env.pop("CUDA_VISIBLE_DEVICES", None)
    env.update(extra)
    return env


def parse_defaults(text: str) -> dict[str, str]:
    """``NAME=${NAME:-default}`` assignments of a script."""
    return {m[1]: m[2] for m in re.finditer(r"^(\w+)=\$\{\1:-(.*)\}\s*$", text, re.MULTILINE)}


def gpus(spec: str) -> set[int]:
    return {int(g) for g in spec.split(",")}


def source_env_file(path: Path) -> dict[str, str]:
    """What bash sees after ``source``-ing an endpoints file."""
    out = subprocess.run(["bash", "-c", 'set -a; source "$1"; env -0', "_", str(path)],
                         capture_output=True, env={"PATH": os.environ["PATH"]}, check=True).stdout
    return dict(item.split("=", 1) for item in out.decode().split("\0") if "=" in item)


class _Server:
    """A loopback OpenAI-style server: ``GET /v1/models`` answers 503 until ``ready_after`` seconds
    have passed, then 200 (or 401 when ``require_key`` does not match). Records what it saw."""

    def __init__(self, ready_after: float = 0.0, require_key: str | None = None) -> None:
        self.t0 = time.monotonic()
        self.ready_after = ready_after
        self.require_key = require_key
        self.auth_headers: list[str | None] = []
        self.key_on_a_command_line = False
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def do_GET(self) -> None:
                auth = self.headers.get("Authorization")
                outer.auth_headers.append(auth)
                if auth and SECRET in auth:
                    outer.key_on_a_command_line |= _secret_in_any_cmdline()
                if self.path != "/v1/models":
                    code = 404
                elif time.monotonic() - outer.t0 < outer.ready_after:
                    code = 503
                elif outer.require_key and auth != f"Bearer {outer.require_key}":
                    code = 401
                else:
                    code = 200
                body = json.dumps({"object": "list", "data": [{"id": "m", "object": "model"}]}).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _secret_in_any_cmdline() -> bool:
    for p in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if SECRET.encode() in p.read_bytes():
                return True
        except OSError:
            continue
    return False


@pytest.fixture
def server():
    made: list[_Server] = []

    def make(**kw) -> _Server:
        s = _Server(**kw)
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()


def run_wait(*args: str, timeout: float = 30, **env: str) -> tuple[subprocess.CompletedProcess, float]:
    t = time.monotonic()
    proc = subprocess.run(["bash", str(WAIT), *args], capture_output=True, text=True, timeout=timeout,
                          env=clean_env(**env), check=False)
    return proc, time.monotonic() - t


# --------------------------------------------------------------------------- static checks


def test_all_recipes_present():
    names = {p.name for p in SCRIPTS}
    assert {"serve_published.sbatch", "serve_single_gpu.sbatch", "wait_healthy.sh",
            "run_with_servers.sbatch"} <= names
    assert (SLURM / "README.md").is_file()


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_bash_syntax(script: Path):
    proc = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_no_script_prints_a_key(script: Path):
    text = script.read_text()
    assert not re.search(r"^\s*set\s+(-\w*x|-o\s+xtrace)", text, re.MULTILINE), "xtrace would print the key"
    key_ref = re.compile(r"\$\{?(?:\w*API_KEY|HF_TOKEN|_auth_key)\b")
    for n, line in enumerate(text.splitlines(), 1):
        code = line.split("#", 1)[0] if not line.lstrip().startswith("#") else ""
        if re.search(r"\b(echo|printf|msc_log|say|log)\b", code):
            assert not key_ref.search(code), f"{script.name}:{n} prints a key: {line.strip()}"
    # the key never goes onto a command line: no --api-key flag anywhere
    assert "--api-key" not in "\n".join(l for l in text.splitlines() if not l.lstrip().startswith("#"))


def test_published_layout_defaults():
    text = (SLURM / "serve_published.sbatch").read_text()
    d = parse_defaults(text)
    assert "#SBATCH --gres=gpu:4" in text
    assert "70B" in d["USER_MODEL"] and d["USER_MODEL"] == "meta-llama/Llama-3.3-70B-Instruct"
    assert d["AGENT_MODEL"] == "meta-llama/Llama-3.1-8B-Instruct"
    assert "8B" in d["JUDGE_MODEL"]
    assert d["EMBED_MODEL"] == "Qwen/Qwen3-Embedding-0.6B"
    assert d["RERANK_MODEL"] in {"Qwen/Qwen3-Reranker-0.6B", "BAAI/bge-reranker-v2-m3"}
    # the 70B: two GPUs, tensor parallel 2, and the flag is really passed
    assert gpus(d["USER_GPUS"]) == {0, 1}
    assert int(d["USER_TP"]) == 2 == len(gpus(d["USER_GPUS"]))
    assert re.search(r'msc_start_server user .*\n?.*--tensor-parallel-size "\$USER_TP"', text)
    # the others: agent alone on one GPU, judge + embedder + reranker on another, none on the 70B's
    roles = ["USER", "AGENT", "JUDGE", "EMBED", "RERANK"]
    placed = {r: gpus(d[f"{r}_GPUS"]) for r in roles}
    assert placed["AGENT"] == {2}
    assert placed["JUDGE"] == placed["EMBED"] == placed["RERANK"] == {3}
    for r in roles[1:]:
        assert not placed[r] & placed["USER"], r
    assert all(g < 4 for s in placed.values() for g in s)
    # memory fractions per GPU sum below 1
    per_gpu: dict[int, float] = {}
    for r in roles:
        frac = float(d[f"{r}_MEM"])
        assert 0 < frac < 1
        for g in placed[r]:
            per_gpu[g] = per_gpu.get(g, 0.0) + frac
    assert set(per_gpu) == {0, 1, 2, 3}
    assert all(total < 1 for total in per_gpu.values()), per_gpu
    # every model, port and the vLLM venv can be overridden
    for r in roles:
        for what in ("MODEL", "PORT", "GPUS", "MEM"):
            assert f"{r}_{what}" in d
    assert "VLLM_VENV" in d


def test_single_gpu_defaults():
    text = (SLURM / "serve_single_gpu.sbatch").read_text()
    d = parse_defaults(text)
    assert "#SBATCH --gres=gpu:1" in text
    shared = float(d["CHAT_MEM"]) + float(d["EMBED_MEM"]) + float(d["RERANK_MEM"])
    split = float(d["SPLIT_CHAT_MEM"]) + float(d["USER_MEM"]) + float(d["EMBED_MEM"]) + float(d["RERANK_MEM"])
    assert shared < 1 and split < 1
    assert "8B" in d["CHAT_MODEL"]


# --------------------------------------------------------------------------- _common.sh


def bash_lib(snippet: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", f'set -euo pipefail; source "{SLURM}/_common.sh"; {snippet}'],
                          capture_output=True, text=True, env=clean_env(**env), check=False)


@pytest.mark.parametrize("version,embed,rerank", [
    ("0.9.2", ["--task", "embed"], ["--task", "score"]),
    ("0.10.0", ["--task", "embed"], ["--task", "score"]),
    ("0.10.1", ["--runner", "pooling"], ["--runner", "pooling"]),
    ("0.10.1.1+cu128", ["--runner", "pooling"], ["--runner", "pooling"]),
    ("0.33.0", ["--runner", "pooling"], ["--runner", "pooling"]),
    ("", ["--runner", "pooling"], ["--runner", "pooling"]),
])
def test_pooling_flags_follow_the_vllm_version(version, embed, rerank):
    e = bash_lib(f'msc_pooling_args embed "{version}" Qwen/Qwen3-Embedding-0.6B')
    r = bash_lib(f'msc_pooling_args rerank "{version}" BAAI/bge-reranker-v2-m3')
    assert e.stdout.splitlines() == embed
    assert r.stdout.splitlines() == rerank


def test_original_qwen3_reranker_gets_the_architecture_override():
    out = bash_lib("msc_pooling_args rerank 0.33.0 Qwen/Qwen3-Reranker-0.6B").stdout.splitlines()
    assert out[:3] == ["--runner", "pooling", "--hf-overrides"]
    override = json.loads(out[3])
    assert override["architectures"] == ["Qwen3ForSequenceClassification"]
    assert override["classifier_from_token"] == ["no", "yes"]
    converted = bash_lib("msc_pooling_args rerank 0.33.0 tomaarsen/Qwen3-Reranker-0.6B-seq-cls").stdout.split()
    assert converted == ["--runner", "pooling"]


def test_gpu_indices_map_onto_the_jobs_devices():
    assert bash_lib("msc_gpu_map 0,1", CUDA_VISIBLE_DEVICES="4,5,6,7").stdout.strip() == "4,5"
    assert bash_lib("msc_gpu_map 3", CUDA_VISIBLE_DEVICES="4,5,6,7").stdout.strip() == "7"
    assert bash_lib("msc_gpu_map 2").stdout.strip() == "2"
    bad = bash_lib("msc_gpu_map 2", CUDA_VISIBLE_DEVICES="0,1")
    assert bad.returncode != 0 and "outside this job's GPUs" in bad.stderr


def test_memory_budget_check():
    ok = bash_lib("msc_check_mem_budget a:0,1:0.9 b:2:0.5 c:2:0.45")
    assert ok.returncode == 0, ok.stderr
    assert "GPU 2: b 0.5 + c 0.45 = 0.95" in ok.stdout
    over = bash_lib("msc_check_mem_budget a:0:0.9 b:1:0.6 c:1:0.4")
    assert over.returncode != 0
    assert "GPU 1 is over-committed" in over.stderr and "GPU 0" not in over.stderr
    # 0.7 + 0.1 + 0.2 is 0.9999999999999999 in floating point: still a full GPU
    assert bash_lib("msc_check_mem_budget a:0:0.7 b:0:0.1 c:0:0.2").returncode != 0
    assert bash_lib("msc_check_mem_budget a:0:1.2").returncode != 0
    assert bash_lib("msc_check_mem_budget a:0:abc").returncode != 0


# --------------------------------------------------------------------------- wait_healthy.sh


CLIENTS = ["python"] + (["curl"] if shutil.which("curl") else [])


@pytest.mark.parametrize("client", CLIENTS)
def test_wait_healthy_waits_for_a_slow_server_and_sends_the_key(server, client):
    slow = server(ready_after=1.0, require_key=SECRET)
    fast = server()
    proc, took = run_wait(f"user={slow.url}", fast.url, "--timeout", "15", "--interval", "0.2",
                          MSC_API_KEY=SECRET, MSC_HEALTH_CLIENT=client)
    assert proc.returncode == 0, proc.stderr
    assert took >= 1.0
    assert len(slow.auth_headers) >= 2  # it really polled while the server said 503
    assert set(slow.auth_headers) == {f"Bearer {SECRET}"}
    assert SECRET not in proc.stdout + proc.stderr
    assert not slow.key_on_a_command_line, "the key was visible in some process's argv"
    assert "user up" in proc.stdout


@pytest.mark.parametrize("client", CLIENTS)
def test_wait_healthy_falls_back_to_openai_api_key(server, client):
    s = server(require_key=SECRET)
    proc, _ = run_wait(s.url, "--timeout", "5", OPENAI_API_KEY=SECRET, MSC_HEALTH_CLIENT=client)
    assert proc.returncode == 0, proc.stderr
    assert s.auth_headers == [f"Bearer {SECRET}"]
    assert SECRET not in proc.stdout + proc.stderr


@pytest.mark.parametrize("client", CLIENTS)
def test_wait_healthy_fails_on_a_closed_port_within_the_timeout(tmp_path, client):
    url = f"http://127.0.0.1:{free_port()}/v1"
    proc, took = run_wait(f"judge={url}", "--timeout", "2", "--interval", "0.2", "--log-dir", str(tmp_path),
                          MSC_API_KEY=SECRET, MSC_HEALTH_CLIENT=client)
    assert proc.returncode == 1
    assert 2 <= took < 6
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert url in lines[0] and "judge" in lines[0] and "NOT UP" in lines[0]
    assert f"{tmp_path}/judge.log" in lines[0]
    assert SECRET not in proc.stdout + proc.stderr


def test_wait_healthy_names_only_the_server_that_is_down(server):
    up = server()
    down = f"http://127.0.0.1:{free_port()}/v1"
    proc, _ = run_wait(f"agent={up.url}", f"embed={down}", "--timeout", "1", "--interval", "0.2")
    assert proc.returncode == 1
    line = proc.stderr.strip()
    assert "embed" in line and down in line
    assert up.url not in line


def test_wait_healthy_reports_a_rejected_key(server):
    s = server(require_key="the-right-one")
    proc, _ = run_wait(s.url, "--timeout", "1", "--interval", "0.2", MSC_API_KEY=SECRET)
    assert proc.returncode == 1
    assert "HTTP 401" in proc.stderr and "MSC_API_KEY" in proc.stderr
    assert SECRET not in proc.stdout + proc.stderr


def test_wait_healthy_usage_errors():
    assert run_wait()[0].returncode == 2
    assert run_wait("not-a-url")[0].returncode == 2
    assert run_wait("http://127.0.0.1:1/v1", "--timeout", "soon")[0].returncode == 2


# --------------------------------------------------------------------------- serve scripts with a fake vllm

FAKE_VLLM = r'''
import json, os, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
args = sys.argv[1:]
assert args[0] == "serve", args
model = args[1]
port = int(args[args.index("--port") + 1])
host = args[args.index("--host") + 1]
rec = {"argv": args, "model": model, "cuda": os.environ.get("CUDA_VISIBLE_DEVICES"),
       "api_key": os.environ.get("VLLM_API_KEY"), "pid": os.getpid(), "pgid": os.getpgid(0),
       "started": time.time()}
print(f"fake vllm: loading {model}", flush=True)
if os.environ.get("FAKE_VLLM_FAIL") and os.environ["FAKE_VLLM_FAIL"] in model:
    print("torch.OutOfMemoryError: CUDA out of memory (fake)", flush=True)
    sys.exit(1)
time.sleep(float(os.environ.get("FAKE_VLLM_DELAY", "0")))
key = os.environ.get("VLLM_API_KEY")
class H(BaseHTTPRequestHandler):
    def do_GET(self):
        ok = self.path == "/v1/models" and (not key or self.headers.get("Authorization") == f"Bearer {key}")
        body = json.dumps({"data": [{"id": model}]}).encode()
        self.send_response(200 if ok else 401)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
httpd = ThreadingHTTPServer((host, port), H)
rec["ready"] = time.time()
with open(os.path.join(os.environ["FAKE_VLLM_RECORD"], f"{port}.json"), "w") as f:
    json.dump(rec, f)
print(f"fake vllm: serving {model} on {host}:{port}", flush=True)
httpd.serve_forever()
'''


def make_fake_vllm(tmp_path: Path, version: str | None) -> Path:
    venv = tmp_path / "vllm-venv"
    (venv / "bin").mkdir(parents=True)
    vllm = venv / "bin" / "vllm"
    vllm.write_text(f"#!{sys.executable}\n{FAKE_VLLM}")
    vllm.chmod(0o755)
    site = tmp_path / "fake-site"
    site.mkdir()
    if version:
        dist = site / f"vllm-{version}.dist-info"
        dist.mkdir()
        (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: vllm\nVersion: {version}\n")
    py = venv / "bin" / "python"
    py.write_text(f'#!/bin/sh\nPYTHONPATH="{site}" exec "{sys.executable}" "$@"\n')
    py.chmod(0o755)
    return venv


class ServeJob:
    """One serve script run in the background, like a SLURM batch job."""

    def __init__(self, tmp_path: Path, script: str, version: str | None = "0.33.0", **env: str) -> None:
        self.tmp = tmp_path
        self.records = tmp_path / "records"
        self.records.mkdir()
        self.logs = tmp_path / "logs"
        self.endpoints = tmp_path / "endpoints.env"
        base = {"VLLM_VENV": str(make_fake_vllm(tmp_path, version)), "VLLM_HOST": "127.0.0.1",
                "MSC_SERVE_HOST": "127.0.0.1", "MSC_ENDPOINTS": str(self.endpoints), "MSC_LOG_DIR": str(self.logs),
                "MSC_POLL": "0.1", "MSC_MONITOR_INTERVAL": "0.2", "MSC_KILL_GRACE": "5", "MSC_STARTUP_TIMEOUT": "60",
                "FAKE_VLLM_RECORD": str(self.records), "SLURM_JOB_ID": "4242", "SLURM_SUBMIT_DIR": str(tmp_path)}
        base.update(env)
        with open(tmp_path / "job.out", "w") as out, open(tmp_path / "job.err", "w") as err:
            self.proc = subprocess.Popen(["bash", str(SLURM / script)], cwd=tmp_path, stdout=out, stderr=err,
                                         env=clean_env(**base), start_new_session=True)

    def wait_for(self, text: str, timeout: float = 60) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if text in self.stdout():
                return
            if self.proc.poll() is not None:
                raise AssertionError(f"job ended ({self.proc.returncode}) before {text!r}:\n{self.stdout()}\n{self.stderr()}")
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {text!r}:\n{self.stdout()}\n{self.stderr()}")

    def stdout(self) -> str:
        return (self.tmp / "job.out").read_text()

    def stderr(self) -> str:
        return (self.tmp / "job.err").read_text()

    def servers(self) -> dict[str, dict]:
        recs = [json.loads(p.read_text()) for p in self.records.glob("*.json")]
        return {r["model"] + "@" + r["argv"][r["argv"].index("--port") + 1]: r for r in recs}

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout)

    def kill_all(self) -> None:
        for r in self.servers().values():
            try:
                os.killpg(r["pgid"], signal.SIGKILL)
            except OSError:
                pass
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


@pytest.fixture
def serve_job(tmp_path):
    jobs: list[ServeJob] = []

    def start(script: str, **kw) -> ServeJob:
        d = tmp_path / f"job{len(jobs)}"
        d.mkdir()
        job = ServeJob(d, script, **kw)
        jobs.append(job)
        return job

    yield start
    for j in jobs:
        j.kill_all()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie left for its (dead) parent's reaper counts as gone
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def ports(n: int) -> list[str]:
    out: set[int] = set()
    while len(out) < n:
        out.add(free_port())
    return [str(p) for p in out]


def test_published_layout_end_to_end(serve_job):
    pu, pa, pj, pe, pr = ports(5)
    job = serve_job("serve_published.sbatch", USER_PORT=pu, AGENT_PORT=pa, JUDGE_PORT=pj, EMBED_PORT=pe,
                    RERANK_PORT=pr, CUDA_VISIBLE_DEVICES="4,5,6,7", MSC_API_KEY=SECRET, FAKE_VLLM_DELAY="0.3")
    job.wait_for("all servers up")
    s = {k.rsplit("@", 1)[1]: v for k, v in job.servers().items()}
    assert set(s) == {pu, pa, pj, pe, pr}
    user, agent, judge, embed, rerank = s[pu], s[pa], s[pj], s[pe], s[pr]

    # layout: the 70B on the job's first two devices with TP 2; the rest placed as published
    assert user["model"] == "meta-llama/Llama-3.3-70B-Instruct"
    assert user["cuda"] == "4,5"
    assert user["argv"][user["argv"].index("--tensor-parallel-size") + 1] == "2"
    assert agent["cuda"] == "6" and agent["model"] == "meta-llama/Llama-3.1-8B-Instruct"
    assert judge["cuda"] == embed["cuda"] == rerank["cuda"] == "7"
    mem = {n: float(r["argv"][r["argv"].index("--gpu-memory-utilization") + 1])
           for n, r in [("judge", judge), ("embed", embed), ("rerank", rerank)]}
    assert sum(mem.values()) < 1
    assert embed["model"] == "Qwen/Qwen3-Embedding-0.6B"
    assert embed["argv"][2:4] == ["--host", "127.0.0.1"]
    assert "--runner" in embed["argv"] and "pooling" in embed["argv"]
    assert "--runner" in rerank["argv"]
    # the servers sharing GPU 3 start one after another
    assert judge["ready"] <= embed["started"] and embed["ready"] <= rerank["started"]

    # the key reaches every server through the environment, never through argv or the logs
    for r in s.values():
        assert r["api_key"] == SECRET
        assert SECRET not in " ".join(r["argv"])
        assert r["pgid"] == r["pid"]  # own process group, so cleanup reaches vLLM's workers
    assert SECRET not in job.stdout() + job.stderr()

    # one log per server
    for name in ("user", "agent", "judge", "embed", "rerank"):
        assert "fake vllm: serving" in (job.logs / f"{name}.log").read_text()

    # endpoints.env: sourceable, complete, secret-free
    assert SECRET not in job.endpoints.read_text()
    env = source_env_file(job.endpoints)
    assert env["USER_URL"] == f"http://127.0.0.1:{pu}/v1"
    assert env["AGENT_URL"] == f"http://127.0.0.1:{pa}/v1"
    assert env["JUDGE_URL"] == f"http://127.0.0.1:{pj}/v1"
    assert env["EMBED_URL"] == f"http://127.0.0.1:{pe}/v1"
    assert env["RERANK_URL"] == f"http://127.0.0.1:{pr}/v1"
    assert env["USER_MODEL"] == "meta-llama/Llama-3.3-70B-Instruct"
    assert env["SERVE_JOB_ID"] == "4242" and env["LOG_DIR"] == str(job.logs)

    # the endpoints pass the health check with the key
    proc, _ = run_wait(*(f"{k}={env[k.upper() + '_URL']}" for k in ("user", "agent", "judge", "embed", "rerank")),
                       "--timeout", "5", MSC_API_KEY=SECRET)
    assert proc.returncode == 0, proc.stderr

    # the trap: SIGTERM (scancel / time limit) stops every server
    rc = job.stop()
    assert rc == 143
    deadline = time.monotonic() + 10
    while any(alive(r["pid"]) for r in s.values()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [r["model"] for r in s.values() if alive(r["pid"])]
    assert "servers stopped" in job.stdout()


def test_a_server_dying_at_startup_fails_the_job_and_stops_the_rest(serve_job):
    pu, pa, pj, pe, pr = ports(5)
    job = serve_job("serve_published.sbatch", USER_PORT=pu, AGENT_PORT=pa, JUDGE_PORT=pj, EMBED_PORT=pe,
                    RERANK_PORT=pr, FAKE_VLLM_FAIL="Qwen3-Embedding")
    rc = job.proc.wait(timeout=60)
    assert rc == 1
    err = job.stderr()
    assert "server embed" in err and "exited" in err and "CUDA out of memory" in err
    survivors = [r for r in job.servers().values() if alive(r["pid"])]
    assert not survivors


@pytest.mark.parametrize("env,message", [
    ({"JUDGE_MEM": "0.9"}, "GPU 3 is over-committed"),
    ({"USER_TP": "4"}, "tensor parallel size 4 needs 4 GPUs"),
    ({"CUDA_VISIBLE_DEVICES": "0,1"}, "outside this job's GPUs"),
    ({"VLLM_VENV": "/nonexistent/venv"}, "no vllm at /nonexistent/venv/bin/vllm"),
])
def test_published_refuses_a_bad_configuration(serve_job, env, message):
    pu, pa, pj, pe, pr = ports(5)
    job = serve_job("serve_published.sbatch", USER_PORT=pu, AGENT_PORT=pa, JUDGE_PORT=pj, EMBED_PORT=pe,
                    RERANK_PORT=pr, **env)
    assert job.proc.wait(timeout=60) == 1
    assert message in job.stderr()
    assert not [r for r in job.servers().values() if alive(r["pid"])]


def test_single_gpu_shared_layout_with_an_old_vllm(serve_job):
    pc, pe, pr = ports(3)
    job = serve_job("serve_single_gpu.sbatch", version="0.9.2", CHAT_PORT=pc, EMBED_PORT=pe, RERANK_PORT=pr)
    job.wait_for("all servers up")
    s = {k.rsplit("@", 1)[1]: v for k, v in job.servers().items()}
    assert set(s) == {pc, pe, pr}
    assert {r["cuda"] for r in s.values()} == {"0"}
    assert s[pe]["argv"][s[pe]["argv"].index("--task") + 1] == "embed"
    assert s[pr]["argv"][s[pr]["argv"].index("--task") + 1] == "score"
    mem = sum(float(r["argv"][r["argv"].index("--gpu-memory-utilization") + 1]) for r in s.values())
    assert mem < 1
    assert s[pc]["api_key"] is None
    env = source_env_file(job.endpoints)
    assert env["USER_URL"] == env["AGENT_URL"] == env["JUDGE_URL"] == f"http://127.0.0.1:{pc}/v1"
    assert env["USER_MODEL"] == env["AGENT_MODEL"] == env["JUDGE_MODEL"] == "meta-llama/Llama-3.1-8B-Instruct"
    assert job.stop() == 143


def test_single_gpu_split_layout(serve_job):
    pc, pu, pe, pr = ports(4)
    job = serve_job("serve_single_gpu.sbatch", CHAT_PORT=pc, USER_PORT=pu, EMBED_PORT=pe, RERANK_PORT=pr,
                    USER_MODEL="Qwen/Qwen2.5-3B-Instruct", VLLM_API_KEY=SECRET)
    job.wait_for("all servers up")
    s = {k.rsplit("@", 1)[1]: v for k, v in job.servers().items()}
    assert set(s) == {pc, pu, pe, pr}
    assert s[pu]["model"] == "Qwen/Qwen2.5-3B-Instruct"
    mem = sum(float(r["argv"][r["argv"].index("--gpu-memory-utilization") + 1]) for r in s.values())
    assert mem < 1
    assert all(r["api_key"] == SECRET for r in s.values())
    env = source_env_file(job.endpoints)
    assert env["USER_URL"] == f"http://127.0.0.1:{pu}/v1" != env["AGENT_URL"]
    assert env["AGENT_URL"] == env["JUDGE_URL"] == f"http://127.0.0.1:{pc}/v1"
    assert SECRET not in job.stdout() + job.stderr() + job.endpoints.read_text()
    assert job.stop() == 143


# --------------------------------------------------------------------------- run_with_servers.sbatch

FAKE_MSC = r'''
import json, os, sys
with open(os.environ["FAKE_MSC_RECORD"], "w") as f:
    json.dump({"argv": sys.argv[1:], "key": os.environ.get("MSC_API_KEY") or os.environ.get("OPENAI_API_KEY"),
               "embed_url": os.environ.get("EMBED_URL")}, f)
sys.exit(int(os.environ.get("FAKE_MSC_EXIT", "0")))
'''


def write_endpoints(path: Path, urls: dict[str, str], job_id: str = "77") -> None:
    lines = [f"SERVE_JOB_ID={job_id}", "LAYOUT=published"]
    models = {"USER": "meta-llama/Llama-3.3-70B-Instruct", "AGENT": "meta-llama/Llama-3.1-8B-Instruct",
              "JUDGE": "meta-llama/Llama-3.1-8B-Instruct", "EMBED": "Qwen/Qwen3-Embedding-0.6B",
              "RERANK": "BAAI/bge-reranker-v2-m3"}
    for role, url in urls.items():
        lines += [f"{role}_URL={url}", f"{role}_MODEL={models[role]}"]
    path.write_text("\n".join(lines) + "\n")


def run_rws(tmp_path: Path, timeout: float = 60, **env: str) -> tuple[subprocess.CompletedProcess, dict | None]:
    fake = tmp_path / "msc"
    fake.write_text(f"#!{sys.executable}\n{FAKE_MSC}")
    fake.chmod(0o755)
    record = tmp_path / "msc-call.json"
    base = {"MSC_BIN": str(fake), "FAKE_MSC_RECORD": str(record), "SLURM_SUBMIT_DIR": str(tmp_path),
            "OUT": str(tmp_path / "out"), "MSC_ENDPOINTS_WAIT": "0", "MSC_HEALTH_TIMEOUT": "5"}
    base.update(env)
    proc = subprocess.run(["bash", str(SLURM / "run_with_servers.sbatch")], cwd=tmp_path, capture_output=True,
                          text=True, timeout=timeout, env=clean_env(**base), check=False)
    return proc, (json.loads(record.read_text()) if record.exists() else None)


def test_run_with_servers_runs_msc_against_the_endpoints(server, tmp_path):
    srv = {r: server(require_key=SECRET) for r in ("USER", "AGENT", "JUDGE", "EMBED", "RERANK")}
    write_endpoints(tmp_path / "endpoints.env", {r: s.url for r, s in srv.items()})
    proc, call = run_rws(tmp_path, MSC_API_KEY=SECRET)
    assert proc.returncode == 0, proc.stderr
    out = str(tmp_path / "out")
    assert call["argv"] == [
        "run", "--methods", "all",
        "--user", f"llm:openai:meta-llama/Llama-3.3-70B-Instruct@{srv['USER'].url}",
        "--agent-model", f"openai:meta-llama/Llama-3.1-8B-Instruct@{srv['AGENT'].url}",
        "--feedback", f"llm:openai:meta-llama/Llama-3.1-8B-Instruct@{srv['JUDGE'].url}",
        "--cache", f"{out}/cache", "--out", out, "--workers", "1", "--resume",
        "--agent-arg", f"embedder=server:Qwen/Qwen3-Embedding-0.6B@{srv['EMBED'].url}",
        "--agent-arg", f"reranker=server:BAAI/bge-reranker-v2-m3@{srv['RERANK'].url}",
    ]
    assert call["key"] == SECRET  # the key reaches msc through the environment ...
    assert SECRET not in proc.stdout + proc.stderr  # ... and is never printed
    assert call["embed_url"] == srv["EMBED"].url
    assert all(s.auth_headers for s in srv.values())  # every server was health-checked


def test_run_with_servers_hybrid_variant_and_extra_args(server, tmp_path):
    s = server()
    write_endpoints(tmp_path / "endpoints.env", {"USER": s.url, "AGENT": s.url, "JUDGE": s.url})
    proc, call = run_rws(tmp_path, MSC_USER_KIND="hybrid", MSC_EXTRA_ARGS="--users 3 --sessions 2",
                         MSC_METHODS="vanilla,rag", MSC_JUDGE_FROM="user")
    assert proc.returncode == 0, proc.stderr
    argv = call["argv"]
    assert argv[argv.index("--user") + 1] == f"hybrid:openai:meta-llama/Llama-3.3-70B-Instruct@{s.url}"
    assert argv[argv.index("--feedback") + 1] == f"llm:openai:meta-llama/Llama-3.3-70B-Instruct@{s.url}"
    assert argv[argv.index("--methods") + 1] == "vanilla,rag"
    assert argv[-4:] == ["--users", "3", "--sessions", "2"]
    assert len(s.auth_headers) == 1  # one shared URL is checked once


def test_run_with_servers_propagates_msc_failure(server, tmp_path):
    s = server()
    write_endpoints(tmp_path / "endpoints.env", {"USER": s.url, "AGENT": s.url, "JUDGE": s.url})
    proc, call = run_rws(tmp_path, FAKE_MSC_EXIT="3")
    assert call is not None and proc.returncode == 3


def test_run_with_servers_does_not_run_msc_when_a_server_is_down(server, tmp_path):
    s = server()
    down = f"http://127.0.0.1:{free_port()}/v1"
    write_endpoints(tmp_path / "endpoints.env", {"USER": down, "AGENT": s.url, "JUDGE": s.url})
    proc, call = run_rws(tmp_path, MSC_HEALTH_TIMEOUT="1")
    assert proc.returncode == 1 and call is None
    assert down in proc.stderr and "user" in proc.stderr


def test_run_with_servers_ignores_a_stale_endpoints_file(server, tmp_path):
    s = server()
    write_endpoints(tmp_path / "endpoints.env", {"USER": s.url, "AGENT": s.url, "JUDGE": s.url}, job_id="1")
    proc, call = run_rws(tmp_path, SERVE_JOB_ID="2")
    assert proc.returncode == 1 and call is None
    assert "from serve job 2" in proc.stderr
