"""The renderer's incremental sentence counting gives exactly the blocks of counting every block anew."""

from __future__ import annotations

import random

from personalization_env.llm import render as R
from personalization_env.preferences import text as T


def _fit_by_recounting(blocks, n):
    blocks = [(k, (list(v[0]), v[1]) if k == "items" else list(v) if k == "para" else v) for k, v in blocks]

    def merge_once():
        for k, v in blocks:
            if k == "para":
                for j in range(len(v) - 1):
                    if not v[j].rstrip().endswith("?"):
                        v[j:j + 2] = [R._merge_two(v[j], v[j + 1])]
                        return True
        for i in range(len(blocks) - 1):
            if blocks[i][0] == "para" and blocks[i + 1][0] == "para":
                blocks[i:i + 2] = [("para", blocks[i][1] + blocks[i + 1][1])]
                return True
        for k, v in blocks:
            if k == "items" and len(v[0]) > (2 if v[1] else 1):
                v[0][-2:] = [R._merge_two(v[0][-2], v[0][-1])]
                return True
        return False

    while (excess := sum(T.count_sentences(R._join([b])) for b in blocks) - n) > 0:
        if not all(merge_once() for _ in range(excess)):
            break
    return blocks


_SENTENCES = ["First, add 3 and 4.", "Then divide by 2!", "Is that clear?", "The answer is 7", "e.g. this one.",
              "Step 2: check it.", "x = 3.5 here.", "Basically, yes", "Why?", "Done. Next.", ""]


def test_fit_sentences_matches_recounting_every_block():
    rng = random.Random(0)
    for _ in range(3000):
        blocks = []
        for _ in range(rng.randint(0, 6)):
            kind = rng.choice(["para", "para", "items", "line", "heading"])
            parts = [rng.choice(_SENTENCES) for _ in range(rng.randint(1, 4))]
            if kind == "para":
                blocks.append(("para", parts))
            elif kind == "items":
                blocks.append(("items", (parts, rng.random() < 0.5)))
            else:
                blocks.append((kind, parts[0] or "Answer: 7"))
        n = rng.randint(1, 6)
        assert R._fit_sentences(blocks, n) == _fit_by_recounting(blocks, n)
