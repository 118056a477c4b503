"""Serve MultiSessionCollab-v0 over the OpenEnv protocol and play one session through the OpenEnv client.

The script starts ``msc serve`` (as ``python -m personalization_env.serve``) on a free loopback port
with a fresh bearer token, waits for ``/health``, plays one session with the vanilla agent (the
embedded scripted model) through :class:`~personalization_env.serve.MSCClient`, prints the
transcript and the session metrics, and stops the server.

Run: python examples/openenv_client.py   (needs: pip install 'multisessioncollab[serve]')

Against a server you started yourself (``MSC_SERVE_TOKEN=... msc serve --users 10``)::

    from personalization_env.serve import MSCClient
    with MSCClient("http://127.0.0.1:8000").sync() as env:   # token from $MSC_SERVE_TOKEN
        result = env.reset(seed=0, user_id="msc-0001")       # the user's first session
        result = env.step("Here is my answer ...")           # result.observation.message: the user
        ...                                                  # env.reset() again: their next session
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

from agents import make_agent
from personalization_env.tasks import load_tasks

DATASETS = "gen_math,gen_logic,gen_mc"
SERVER = [sys.executable, "-m", "personalization_env.serve", "--users", "3", "--datasets", DATASETS,
          "--max-sessions", "4", "--log-level", "warning"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, server: subprocess.Popen, timeout: float = 60.0) -> None:
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never via a proxy
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited with code {server.returncode} before it was healthy")
        try:
            with direct.open(f"{url}/health", timeout=2) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.1)
    raise RuntimeError(f"the server was not healthy after {timeout:.0f} s")


def play_one_session(url: str, token: str) -> None:
    from personalization_env.serve import MSCClient  # imports openenv-core (a few seconds)

    # the embedded scripted model stands in for an LLM: it "knows" a task by finding its problem text
    # among the tasks loaded in this process, so load the task sets the server serves (an LLM needs no such step)
    for name in DATASETS.split(","):
        load_tasks(name)
    agent = make_agent("vanilla", seed=0)
    with MSCClient(url, token=token, message_timeout_s=30).sync() as env:
        result = env.reset(seed=0, user_id="msc-0001")  # seed: a fresh lifetime; reset() again: the next session
        obs = result.observation
        print(f"[user {obs.user_id} | session {obs.session} | episode {obs.episode_id}]\n")
        print(f"USER: {obs.message}\n")
        total = 0.0
        while not result.done:
            reply = agent.act(obs.model_dump())
            result = env.step(reply)
            obs = result.observation
            total += result.reward or 0.0
            agent.observe(obs.model_dump(), result.reward or 0.0, obs.terminated, obs.truncated, obs.info)
            print(f"ASSISTANT: {reply}\n")
            print(f"USER: {obs.message}   [reward {result.reward:+.2f}, {obs.info['feedback_label']}]\n")
        agent.end_session(obs.user_id)
        print(f"session over ({'user ended it' if obs.terminated else 'max turns'}); return {total:+.2f}")
        print("metrics:", ", ".join(f"{k}={v:g}" for k, v in obs.metrics.items()))


def main() -> int:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    token = secrets.token_urlsafe(24)  # the server reads it from $MSC_SERVE_TOKEN, never from its command line
    with tempfile.TemporaryFile() as log:
        server = subprocess.Popen([*SERVER, "--port", str(port)], stdout=log, stderr=subprocess.STDOUT,
                                  env={**os.environ, "MSC_SERVE_TOKEN": token})
        try:
            wait_healthy(url, server)
            play_one_session(url, token)
        except Exception:
            log.seek(0)
            print(log.read().decode(errors="replace")[-3000:], file=sys.stderr)
            raise
        finally:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
