from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.py"))
#: examples that need an extra: (module it imports, the extra that installs it)
NEEDS = {"trl_grpo.py": ("trl", "trl"), "openenv_client.py": ("openenv", "serve"),
         "sb3_ppo_retrieval.py": ("stable_baselines3", "sb3")}


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.name)
def test_example_runs(script):
    module, extra = NEEDS.get(script.name, (None, None))
    if module and importlib.util.find_spec(module) is None:
        pytest.skip(f"{script.name} needs the [{extra}] extra")
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip()
