"""Sample reply contents and contexts shared by the renderer tests."""

from __future__ import annotations

from typing import Any, Mapping

from personalization_env.llm.render import ReplyContent
from personalization_env.types import PreferenceType, ReplyContext

CODE_SRC = "def count_vowels(text):\n    total = 0\n    for ch in text.lower():\n        if ch in 'aeiou':\n            total += 1\n    return total"
CODE_SRC2 = "def pair_sums(nums, target):\n    seen = set()\n    for x in nums:\n        if target - x in seen:\n            return True\n        seen.add(x)\n    return False"

CONTENTS: list[ReplyContent] = [
    ReplyContent("math", ["Each box holds 3 apples and there are 4 boxes.", "Multiply to get 3 * 4 = 12 apples.",
                          "No apples are added or removed, so the total stays 12."],
                 "So the total number of apples is \\boxed{12}.", intuition="Repeated addition of equal groups is multiplication.",
                 example="For instance, 4 bags of 3 marbles is the same as 3 + 3 + 3 + 3 marbles.", confidence=0.9),
    ReplyContent("math", ["Let the width be w, so the length is 2w.", "The perimeter gives 2(w + 2w) = 36, so 6w = 36.",
                          "Solving gives w = 6 and the length is 12.", "The area is 6 * 12 = 72."],
                 "The area of the rectangle is 72.", confidence=0.75,
                 alternatives=[("guessing and checking widths", "easy but slow"), ("setting up one equation", "faster but needs algebra")]),
    ReplyContent("logic", ["Anna sits left of Ben, and Ben is not at either end.", "Carl must sit at the right end.",
                          "That leaves only the order Anna, Ben, Carl."],
                 "Therefore the answer is that Carl sits on the right.", answer="Carl",
                 acknowledgement="Thanks for adding the clue about Ben, that narrows it down."),
    ReplyContent("multiple_choice", ["The question asks which gas plants absorb for photosynthesis.",
                                     "Plants take in carbon dioxide and release oxygen."],
                 "The correct option is (B) carbon dioxide.", confidence=0.95),
    ReplyContent("code", ["Loop over the characters of the lowercased text.", "Count the ones that are vowels.",
                          "Return the final count."],
                 "The function count_vowels returns the number of vowels.", code=CODE_SRC, answer="count_vowels"),
    ReplyContent("code", ["Keep a set of numbers seen so far.", "For each number, check whether its complement is in the set.",
                          "Return True as soon as a pair is found, else False at the end."],
                 "The function pair_sums answers whether two numbers add up to the target.", code=CODE_SRC2,
                 answer="pair_sums", example_call="pair_sums([1, 4, 6], 10)"),
    ReplyContent("writing", ["Open with the main point of the email.", "Give the new meeting time and the reason for the change.",
                             "Close by asking for a quick confirmation."],
                 "Here is the final draft of the email, ready to send.", answer="the email draft"),
    ReplyContent("math", ["Subtract 5 from both sides to get 2x = 8.", "Divide by 2 so x = 4."],
                 "The solution is x = \\boxed{4}.", correcting=True, confidence=0.85),
    ReplyContent("math", ["Start by writing the equation 3x + 2 = 11.", "Subtract 2 to get 3x = 9."], None, partial=True),
    ReplyContent("logic", ["List who can be the liar.", "If Dana lies, Eve's statement is true.", "Test each case against the rules.",
                           "Only the case where Eve lies is consistent."], "So the answer is Eve.", answer="Eve", correcting=True),
]


def context_for(t: PreferenceType, content: ReplyContent, directives: Mapping[str, Any] | None = None
                ) -> ReplyContext | None:
    """A context in which ``t`` applies to a reply rendering ``content`` (None when it cannot).

    With ``directives`` containing ``incremental`` the answer is held back (see render), so the context
    has no ``final_answer``.
    """
    sits = {"explanation", "multi_step"} if len(content.steps) > 1 else {"explanation"}
    held_back = bool(directives and directives.get("incremental")) and len(content.steps) > 2
    if content.answer_text and not held_back:
        sits |= {"final_answer", "winding_down"}
    if content.code:
        sits.add("code")
    if content.correcting:
        sits.add("error_correction")
    ctx = ReplyContext(task_kind=content.task_kind, situations=frozenset(sits), turn=1,
                       previous_user_message="Can you help me with this?")
    return ctx if t.condition.applies(ctx) else None


def applicable(t: PreferenceType, directives: Mapping[str, Any] | None = None
               ) -> list[tuple[ReplyContent, ReplyContext]]:
    """(content, context) pairs of :data:`CONTENTS` in which ``t`` applies."""
    out = []
    for c in CONTENTS:
        ctx = context_for(t, c, directives)
        if ctx is not None:
            out.append((c, ctx))
    return out
