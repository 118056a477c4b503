"""The README's marked commands run as written, so the README cannot drift from the code.

A fenced block right after a ``<!-- readme-test -->`` line is run: a ``bash`` block line by line in
bash (``set -e``) with this venv's ``bin`` first on ``PATH``, as after ``source .venv/bin/activate``,
from the repository root; a ``python`` block as a script with this Python. Blocks are meant to be
the short ones a newcomer runs first (the set-up commands themselves are what CI runs to get here).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MARK = "<!-- readme-test -->"
_BLOCK = re.compile(r"<!-- readme-test -->\s*\n```(\w+)\n(.*?)\n```", re.S)


def marked_blocks() -> list[tuple[str, str]]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    return [(lang, body) for lang, body in _BLOCK.findall(text)]


def test_the_readme_marks_blocks_to_run():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert text.count(MARK) == len(marked_blocks()) >= 3, "every mark must stand right before a fenced block"


@pytest.mark.parametrize("lang,body", marked_blocks(), ids=lambda x: x.splitlines()[0][:50] if "\n" in x or " " in x else x)
def test_readme_block_runs(lang, body, tmp_path):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "HF_HUB_OFFLINE": "1", "MSC_README_TEST": "1"}
    if lang == "bash":
        cmd = ["bash", "-e", "-c", body]
    elif lang == "python":
        script = tmp_path / "block.py"
        script.write_text(body, encoding="utf-8")
        cmd = [sys.executable, str(script)]
    else:
        pytest.fail(f"a marked block must be bash or python, got {lang!r}")
    p = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, f"README block failed ({p.returncode}):\n{body}\n--- stderr:\n{p.stderr[-3000:]}"
